"""Neural and empirical models end to end over HTTP with a real worker (``molrg up``): fit, weights download,
sampling with the section-13 scores."""

import io

import numpy as np
import pytest
import torch

from molrg.neural import NeuralConfig, NeuralDiffusion
from tests.e2e.conftest import Stack
from tests.e2e.test_jobs_e2e import _dataset, _fit, _fitted_model
from workers.neural import weights_metadata

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _samples(stack: Stack, model_id: str, **body: object) -> tuple[dict, np.ndarray]:
    resp = stack.client.post(f"/api/v1/models/{model_id}/samples", json=body)
    assert resp.status_code == 202, resp.text
    job = stack.wait_job(resp.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    sset = stack.client.get(f"/api/v1/sample-sets/{job['result']['sample_set_id']}").raise_for_status().json()
    X = np.load(io.BytesIO(stack.client.get(sset["links"]["samples"]).content))
    return sset, X


def test_mlp_fit_weights_and_samples(stack: Stack) -> None:
    ds = _dataset(stack, dims=[4, 4], samples_per_component=64)
    job = _fit(stack, ds["id"], n_components=2, dims=[4, 4], method="neural", seed=0,
               options={"architecture": "mlp", "steps": 200})
    model = _fitted_model_wait(stack, job)
    assert model["method"] == "neural" and model["config"]["steps"] == 200
    assert model["metrics"]["steps_done"] == 200 and np.isfinite(model["metrics"]["final_loss"])
    assert model["metrics"]["learned_subspaces"]["labels"] == "ground_truth"
    history = stack.client.get(model["links"]["loss"], params={"max_points": 1000}).raise_for_status().json()
    assert history["total_points"] == 200 and len(history["points"]) == 200
    # weights.safetensors: the download alone rebuilds the denoiser the service samples with
    r = stack.client.get(model["links"]["weights"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    from safetensors.torch import load

    net = NeuralDiffusion.from_state_dict(NeuralConfig.from_json(weights_metadata(r.content)["config"]),
                                          load(r.content))
    sset, S = _samples(stack, model["id"], n_samples=64, sampler="heun", steps=18, seed=4)
    local = net.sample(64, seed=4, sampler="heun", steps=18).numpy()
    np.testing.assert_allclose(S, local, rtol=1e-5, atol=1e-6)
    d = sset["diagnostics"]
    assert 0 <= d["memorisation"]["memorised_fraction"] <= 1
    assert 0 <= d["memorisation"]["generalisation_score"] <= 1
    assert 0 <= d["true"]["on_support_fraction"] <= 1 and d["model"]["method"] == "neural"
    x = torch.zeros(1, 48, dtype=torch.float64)
    assert torch.isfinite(net.denoise(x, 1.0)).all()
    # a low-rank model has no weights
    lowrank = _fitted_model(stack, _fit(stack, ds["id"], n_components=2, dims=[4, 4], method="subspace_clustering"))
    assert "weights" not in lowrank["links"]
    assert stack.client.get(f"/api/v1/models/{lowrank['id']}/weights.safetensors").status_code == 404


def _fitted_model_wait(stack: Stack, job: dict) -> dict:
    done = stack.wait_job(job["id"], timeout=600)
    assert done["status"] == "succeeded", done
    return stack.client.get(f"/api/v1/models/{done['result']['model_id']}").raise_for_status().json()


def test_empirical_model_memorises(stack: Stack) -> None:
    ds = _dataset(stack, dims=[4, 4], samples_per_component=4)
    model = _fitted_model(stack, _fit(stack, ds["id"], n_components=2, dims=[4, 4], method="empirical"))
    assert model["method"] == "empirical" and "weights" not in model["links"]
    sset, S = _samples(stack, model["id"], n_samples=50, sampler="heun", steps=18, seed=0)
    mem = sset["diagnostics"]["memorisation"]
    assert mem["memorised_fraction"] >= 0.9 and mem["generalisation_score"] <= 0.1, mem
    assert S.shape == (50, 48)
