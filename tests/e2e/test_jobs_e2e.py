"""End to end over HTTP with a real worker process: datasets -> fits -> samples, cancel, errors."""

import io
import time

import numpy as np
import pytest

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _dataset(stack: Stack, **synthetic: object) -> dict:
    body = {"name": "e2e", "synthetic": {"ambient_dim": 48, "seed": 0, **synthetic}}
    resp = stack.client.post("/api/v1/datasets", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _fit(stack: Stack, dataset_id: str, **body: object) -> dict:
    resp = stack.client.post("/api/v1/fits", json={"dataset_id": dataset_id, **body})
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"].endswith(f"/api/v1/jobs/{resp.json()['id']}")
    return resp.json()


def _fitted_model(stack: Stack, job: dict) -> dict:
    done = stack.wait_job(job["id"])
    assert done["status"] == "succeeded", done
    return stack.client.get(f"/api/v1/models/{done['result']['model_id']}").raise_for_status().json()


def test_pca_recovers_with_enough_samples(stack: Stack) -> None:
    ds = _dataset(stack, dims=[4], n_samples=10)
    assert ds["n_samples"] == 10 and ds["ambient_dim"] == 48 and ds["has_ground_truth"] is True
    model = _fitted_model(stack, _fit(stack, ds["id"], n_components=1, dims=[4], method="pca", seed=0))
    assert model["metrics"]["recovery_error"] < 1e-6
    bases = np.load(io.BytesIO(stack.client.get(f"/api/v1/models/{model['id']}/bases.npz").content))
    U = bases["U_0"]
    assert U.shape == (48, 4) and np.allclose(U.T @ U, np.eye(4), atol=1e-8)


def test_pca_fails_below_the_intrinsic_dimension(stack: Stack) -> None:
    ds = _dataset(stack, dims=[4], n_samples=3)
    model = _fitted_model(stack, _fit(stack, ds["id"], n_components=1, dims=[4], method="pca", seed=0))
    assert model["metrics"]["recovery_error"] > 1


@pytest.mark.parametrize("method", ["diffusion", "subspace_clustering"])
def test_two_components_recovered_and_sampled(stack: Stack, method: str) -> None:
    ds = _dataset(stack, dims=[3, 3], samples_per_component=10)
    model = _fitted_model(stack, _fit(stack, ds["id"], n_components=2, dims=[3, 3], method=method, seed=1))
    assert model["metrics"]["recovery_error"] < 0.1, model["metrics"]
    history = stack.client.get(f"/api/v1/jobs/{model['job_id']}/metrics", params={"name": "loss", "max_points": 50})
    assert history.status_code == 200
    resp = stack.client.post(f"/api/v1/models/{model['id']}/samples",
                             json={"n_samples": 200, "sampler": "heun", "steps": 18, "seed": 0})
    assert resp.status_code == 202, resp.text
    job = stack.wait_job(resp.json()["id"])
    assert job["status"] == "succeeded", job
    sset = stack.client.get(f"/api/v1/sample-sets/{job['result']['sample_set_id']}").raise_for_status().json()
    diag = sset["diagnostics"]
    assert diag["true"]["residual"]["median"] < 1e-2, diag
    assert diag["fitted"]["residual"]["median"] < 1e-2, diag
    X = np.load(io.BytesIO(stack.client.get(f"/api/v1/sample-sets/{sset['id']}/samples.npy").content))
    assert X.shape == (200, 48) and np.isfinite(X).all()


def test_cancel_long_diffusion_fit(stack: Stack) -> None:
    ds = _dataset(stack, dims=[4, 4], samples_per_component=40)
    job = _fit(stack, ds["id"], n_components=2, dims=[4, 4], method="diffusion", seed=0,
               options={"model": "softmax", "steps": 200000, "restarts": 1})
    stack.wait_job(job["id"], until=("running",), timeout=60)
    t0 = time.monotonic()
    resp = stack.client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert resp.status_code in (200, 202), resp.text
    done = stack.wait_job(job["id"], timeout=30)
    assert done["status"] == "cancelled", done
    assert time.monotonic() - t0 < 15
    assert done["result"] is None or "model_id" not in (done["result"] or {})


def test_bad_requests_get_specific_4xx(stack: Stack) -> None:
    bad = stack.client.post("/api/v1/datasets", json={"name": "x", "synthetic": {"ambient_dim": 48, "dims": [30, 30], "n_samples": 10}})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert "sum(dims)=60 exceeds ambient_dim=48" in bad.text
    missing = stack.client.post("/api/v1/fits", json={"dataset_id": "00000000-0000-0000-0000-000000000000",
                                                       "n_components": 1, "dims": [2], "method": "pca"})
    assert missing.status_code == 404 and missing.json()["code"]
    ds = _dataset(stack, dims=[2], n_samples=5)
    wrong = stack.client.post("/api/v1/fits", json={"dataset_id": ds["id"], "n_components": 2, "dims": [2], "method": "pca"})
    assert wrong.status_code == 422
    unknown = stack.client.post("/api/v1/fits", json={"dataset_id": ds["id"], "n_components": 1, "dims": [2],
                                                       "method": "nope"})
    assert unknown.status_code == 422
    noauth = stack.client.get("/api/v1/jobs", headers={"Authorization": "Bearer wrong"})
    assert noauth.status_code == 401
    upload = stack.client.post("/api/v1/datasets/upload", files={"file": ("x.npy", b"\x93NUMPY garbage", "application/octet-stream")})
    assert 400 <= upload.status_code < 500
