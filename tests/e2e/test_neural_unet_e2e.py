"""A unet fit end to end over HTTP with a real worker (``molrg up``, embedded backend): on 4x4x3 MoLRG data
(n = 48 = 3 * 4^2) and on the built-in 8x8 digits (n = 64 = 1 * 8^2): fit, sample, the section-13 scores in
the diagnostics, the model's and the sample set's figures.

Small settings on purpose (width 8, one resolution, batch 32, 60 steps): a unet step costs seconds on this
CPU at the default width; this test checks the pipeline, not the quality of the networks.
"""

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import Stack, _start
from tests.e2e.test_jobs_e2e import _dataset, _fit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SMALL_UNET = {"architecture": "unet", "width": 8, "depth": 1, "batch_size": 32, "steps": 60}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The embedded default only (a unet costs CPU time; the backends are covered by the other e2e tests)."""
    yield from _start(tmp_path_factory.mktemp("unet_embedded"), "embedded", {})


def _wait_plots(stack: Stack, url: str, kinds: set[str], timeout: float = 90.0) -> dict[str, dict]:
    """Figures are rendered after the job's result is committed: poll until ``kinds`` are all there."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        plots = {p["kind"]: p for p in stack.client.get(url).raise_for_status().json()}
        if kinds <= set(plots) or time.monotonic() > deadline:
            return plots
        time.sleep(0.25)


def _check_pngs(stack: Stack, plots: dict[str, dict]) -> None:
    for meta in plots.values():
        r = stack.client.get(meta["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", (meta, r.status_code)
        with Image.open(io.BytesIO(r.content)) as im:
            im.load()
            assert im.format == "PNG" and im.size == (meta["width"], meta["height"])


def _fit_unet(stack: Stack, dataset_id: str, n_components: int, dims: list[int], channels: int) -> dict:
    job = _fit(stack, dataset_id, n_components=n_components, dims=dims, method="neural", seed=0,
               options={**SMALL_UNET, "channels": channels})
    done = stack.wait_job(job["id"], timeout=240)
    assert done["status"] == "succeeded", done
    model = stack.client.get(f"/api/v1/models/{done['result']['model_id']}").raise_for_status().json()
    assert model["method"] == "neural" and model["config"]["architecture"] == "unet"
    assert model["config"]["width"] == 8 and model["config"]["channels"] == channels
    assert model["metrics"]["steps_done"] == SMALL_UNET["steps"] and np.isfinite(model["metrics"]["final_loss"])
    assert stack.client.get(model["links"]["weights"]).status_code == 200
    plots = _wait_plots(stack, model["links"]["plots"], {"loss", "projection", "jacobian"})
    assert {"loss", "projection", "jacobian"} <= set(plots), plots
    _check_pngs(stack, plots)
    return model


def _sample(stack: Stack, model: dict, n: int) -> tuple[dict, np.ndarray]:
    resp = stack.client.post(f"/api/v1/models/{model['id']}/samples",
                             json={"n_samples": 32, "sampler": "heun", "steps": 8, "seed": 1})
    assert resp.status_code == 202, resp.text
    job = stack.wait_job(resp.json()["id"], timeout=180)
    assert job["status"] == "succeeded", job
    sset = stack.client.get(f"/api/v1/sample-sets/{job['result']['sample_set_id']}").raise_for_status().json()
    S = np.load(io.BytesIO(stack.client.get(sset["links"]["samples"]).content))
    assert S.shape == (32, n) and np.isfinite(S).all()
    mem = sset["diagnostics"]["memorisation"]
    assert 0 <= mem["memorised_fraction"] <= 1 and 0 <= mem["generalisation_score"] <= 1, mem
    return sset, S


def test_unet_on_molrg_4x4x3(stack: Stack) -> None:
    ds = _dataset(stack, dims=[4, 4], samples_per_component=24)  # n = 48 = 3 channels of 4x4, N = 48
    model = _fit_unet(stack, ds["id"], 2, [4, 4], channels=3)
    assert model["metrics"]["learned_subspaces"]["labels"] == "ground_truth"
    sset, _ = _sample(stack, model, 48)
    d = sset["diagnostics"]
    assert 0 <= d["true"]["on_support_fraction"] <= 1 and d["model"]["method"] == "neural"


def test_unet_on_digits(stack: Stack) -> None:
    resp = stack.client.post("/api/v1/datasets/builtin", json={"dataset": "digits", "classes": [0, 1]})
    assert resp.status_code == 201, resp.text
    ds = resp.json()
    assert ds["ambient_dim"] == 64 and ds["has_ground_truth"] is False and 300 < ds["n_samples"] < 400
    model = _fit_unet(stack, ds["id"], 2, [8, 8], channels=1)
    sset, _ = _sample(stack, model, 64)
    mem = sset["diagnostics"]["memorisation"]
    # without ground truth the generalisation score is 1 - memorised fraction
    assert mem["generalisation_score"] == pytest.approx(1 - mem["memorised_fraction"]), mem
    splots = _wait_plots(stack, sset["links"]["plots"], {"grid"})
    assert "grid" in splots, splots  # n = 64 is an 8x8 image: samples beside their nearest training images
    _check_pngs(stack, splots)
