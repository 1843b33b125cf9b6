"""Fit and sample submission, job reads, listing, cancellation, metric histories."""

import io
import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from db.base import utcnow
from db.enums import JobStatus
from db.models import Job, MetricPoint
from db.session import session_scope
from tests.service.factories import insert_model, insert_sample_set, make_dataset, submit_fit
from tests.service.test_datasets import assert_problem


def test_fit_is_queued_and_published_after_commit(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    body = {"dataset_id": ds["id"], "n_components": 2, "dims": [2, 3], "method": "diffusion",
            "options": {"steps": 50, "lr": 0.01, "restarts": 2, "optimizer": "adam"}, "seed": 3}
    r = api.client.post("/api/v1/fits", json=body, headers=h)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["progress"], job["attempts"]) == ("fit", "queued", 0.0, 0)
    assert job["params"] == {"dataset_id": ds["id"], "n_components": 2, "dims": [2, 3], "method": "diffusion",
                             "options": body["options"], "seed": 3}
    assert [(s.name, s.job_id, s.queue, s.committed) for s in api.sent] == [("molrg.fit", job["id"], "gpu", True)]
    got = api.client.get(job["links"]["self"], headers=h).json()
    assert got["id"] == job["id"] and got["result"] is None and got["links"]["cancel"].endswith("/cancel")


@pytest.mark.parametrize(
    ("patch", "status", "field", "reason"),
    [
        ({"dims": [2]}, 422, "dims", "len(dims)=1 != n_components=2"),
        ({"dims": [2, 12]}, 422, "dims[1]", "must be < ambient_dim=12"),
        ({"dims": [2, 40]}, 422, "dims[1]", "ambient_dim=12"),
        ({"method": "pca"}, 422, "n_components", "n_components must be 1"),
        ({"method": "pca", "n_components": 1, "dims": [2], "options": {"lr": 1}}, 422, "options.lr", "unknown"),
        ({"options": {"bogus": 1}}, 422, "options.bogus", "unknown option"),
        ({"method": "diffusion", "options": {"steps": 10**9}}, 422, "options.steps", "less than or equal to 1000000"),
        ({"method": "diffusion", "options": {"lr": -1}}, 422, "options.lr", "greater than 0"),
        ({"method": "diffusion", "options": {"model": "linear"}}, 422, "options.model", "n_components = 1"),
        ({"method": "diffusion", "options": {"batch_size": 8}}, 422, "options.batch_size", "softmax model only"),
        ({"method": "subspace_clustering", "options": {"init": "pca"}}, 422, "options.init", "'data' or 'random'"),
        ({"method": "diffusion", "options": {"optimizer": "lbfgs"}}, 422, "options.optimizer", "'adam' or 'sgd'"),
        ({"options": {"n_restarts": 10**6}}, 422, "options.n_restarts", "less than or equal to 256"),
        ({"options": {"n_restarts": 100}}, 422, "options.n_restarts", "max_restarts"),
        ({"method": "kmeans"}, 422, "method", None),
        ({"n_components": 0}, 422, "n_components", None),
        ({"n_components": 1000, "dims": [1] * 1000}, 422, "n_components", "less than or equal to 64"),
        ({"seed": -1}, 422, "seed", None),
        ({"extra": True}, 422, "extra", None),
        ({"dataset_id": str(uuid.UUID(int=1))}, 404, None, None),
    ],
)
def test_fit_validation_and_nothing_queued(sapi: Any, patch: dict[str, Any], status: int, field: str | None,
                                           reason: str | None) -> None:
    h = sapi.key()
    ds = make_dataset(sapi, h)
    body = {"dataset_id": ds["id"], "n_components": 2, "dims": [2, 3], "method": "subspace_clustering"} | patch
    r = sapi.client.post("/api/v1/fits", json=body, headers=h)
    problem = assert_problem(r, status, field)
    if reason:
        assert any(reason in e["reason"] for e in problem["errors"]), problem
    assert sapi.sent == []
    assert sapi.client.get("/api/v1/jobs", headers=h).json()["items"] == []


def test_publish_failure_still_commits_the_job(sapi: Any) -> None:
    """A broker failure after commit must not lose the job: it stays queued for the reaper."""
    from service.deps import get_queue
    from service.queue import JobQueue

    class Broken:
        def send_task(self, *a: Any, **k: Any) -> None:
            raise ConnectionError("broker down")

    sapi.client.app.dependency_overrides[get_queue] = lambda: JobQueue(Broken())
    h = sapi.key()
    job = submit_fit(sapi, h, make_dataset(sapi, h)["id"])
    assert sapi.client.get(f"/api/v1/jobs/{job['id']}", headers=h).json()["status"] == "queued"


def test_failed_commit_sends_nothing(sapi: Any) -> None:
    from service.deps import get_session

    h = sapi.key()
    ds = make_dataset(sapi, h)
    real = sapi.client.app.dependency_overrides.get(get_session)
    assert real is None
    maker = sapi.client.app.state.sessionmaker

    class FailingCommit:
        def __init__(self) -> None:
            self.s = maker()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.s, name)

        def commit(self) -> None:
            raise RuntimeError("commit failed")

    sapi.client.app.state.sessionmaker = FailingCommit
    try:
        body = {"dataset_id": ds["id"], "n_components": 2, "dims": [2, 3], "method": "subspace_clustering"}
        with pytest.raises(RuntimeError):
            sapi.client.post("/api/v1/fits", json=body, headers=h)
    finally:
        sapi.client.app.state.sessionmaker = maker
    assert sapi.sent == []


def test_sample_submission(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    _job, model_id = insert_model(api, "alice", ds["id"])
    r = api.client.post(f"/api/v1/models/{model_id}/samples", json={"n_samples": 10, "sampler": "ddim", "steps": 5},
                        headers=h)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "sample" and job["params"] == {"model_id": model_id, "n_samples": 10, "sampler": "ddim",
                                                         "steps": 5, "seed": 0}
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert [(s.name, s.committed) for s in api.sent] == [("molrg.sample", True)]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"n_samples": 10**9}, 422, "n_samples"),
        ({"steps": 10**6}, 422, "steps"),
        ({"sampler": "euler"}, 422, "sampler"),
        ({"n_samples": 0}, 422, "n_samples"),
    ],
)
def test_sample_validation(sapi: Any, body: dict[str, Any], status: int, field: str) -> None:
    h = sapi.key()
    _job, model_id = insert_model(sapi, "alice", make_dataset(sapi, h)["id"])
    assert_problem(sapi.client.post(f"/api/v1/models/{model_id}/samples", json=body, headers=h), status, field)
    assert sapi.sent == []


def test_sampling_missing_model_is_404(sapi: Any) -> None:
    r = sapi.client.post(f"/api/v1/models/{uuid.uuid4()}/samples", json={}, headers=sapi.key())
    assert_problem(r, 404, code="not_found")
    assert sapi.sent == []


def test_models_and_sample_sets(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    job_id, model_id = insert_model(api, "alice", ds["id"])
    m = api.client.get(f"/api/v1/models/{model_id}", headers=h).json()
    assert (m["n_components"], m["dims"], m["ambient_dim"], m["method"], m["dataset_id"], m["job_id"]) == (
        2, [2, 3], 12, "subspace_clustering", ds["id"], job_id)
    assert m["metrics"]["recovery_error"] == 0.01 and m["weights"] == [0.5, 0.5]
    z = np.load(io.BytesIO(api.client.get(m["links"]["bases"], headers=h).content))
    assert z["U_1"].shape == (12, 3)
    assert [x["id"] for x in api.client.get("/api/v1/models", headers=h).json()["items"]] == [model_id]
    job = api.client.get(f"/api/v1/jobs/{job_id}", headers=h).json()
    assert job["result"] == {"model_id": model_id} and job["links"]["model"] == f"/api/v1/models/{model_id}"
    assert job["duration_s"] is not None and job["duration_s"] >= 0
    set_id = insert_sample_set(api, "alice", model_id)
    s = api.client.get(f"/api/v1/sample-sets/{set_id}", headers=h).json()
    assert s["diagnostics"] == {"off_subspace_residual": 1e-3} and s["model_id"] == model_id
    samples = np.load(io.BytesIO(api.client.get(s["links"]["samples"], headers=h).content))
    assert samples.shape == (5, 12)
    assert len(api.client.get("/api/v1/sample-sets", headers=h).json()["items"]) == 1
    assert_problem(api.client.get(f"/api/v1/models/{uuid.uuid4()}/bases.npz", headers=h), 404)
    assert_problem(api.client.get(f"/api/v1/sample-sets/{uuid.uuid4()}/samples.npy", headers=h), 404)


def test_list_jobs_filters_and_cursor(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    ids = [submit_fit(api, h, ds["id"], seed=i)["id"] for i in range(5)]
    insert_model(api, "alice", ds["id"])  # one succeeded fit job
    page = api.client.get("/api/v1/jobs", params={"status": "queued", "limit": 3}, headers=h).json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:3] and page["next_cursor"]
    page2 = api.client.get("/api/v1/jobs", params={"status": "queued", "limit": 3, "cursor": page["next_cursor"]},
                           headers=h).json()
    assert [j["id"] for j in page2["items"]] == ids[::-1][3:] and page2["next_cursor"] is None
    assert len(api.client.get("/api/v1/jobs", params={"status": "succeeded"}, headers=h).json()["items"]) == 1
    assert len(api.client.get("/api/v1/jobs", params={"kind": "sample"}, headers=h).json()["items"]) == 0
    assert len(api.client.get("/api/v1/jobs", params={"kind": "fit"}, headers=h).json()["items"]) == 6
    assert_problem(api.client.get("/api/v1/jobs", params={"status": "exploded"}, headers=h), 422, "status")
    assert_problem(api.client.get("/api/v1/jobs", params={"kind": "train"}, headers=h), 422, "kind")


def test_cancel(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    queued = submit_fit(api, h, ds["id"], seed=1)
    r = api.client.post(f"/api/v1/jobs/{queued['id']}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    assert_problem(api.client.post(f"/api/v1/jobs/{queued['id']}/cancel", headers=h), 409, code="invalid_job_state")
    running = submit_fit(api, h, ds["id"], seed=2)
    with session_scope(api.maker) as s:
        s.execute(update(Job).where(Job.id == uuid.UUID(running["id"]))
                  .values(status=JobStatus.running, started_at=utcnow(), attempts=1))
    r = api.client.post(f"/api/v1/jobs/{running['id']}/cancel", headers=h)
    assert (r.json()["status"], r.json()["cancel_requested"]) == ("cancelling", True)
    r = api.client.post(f"/api/v1/jobs/{running['id']}/cancel", headers=h)  # repeat is harmless
    assert r.json()["status"] == "cancelling"
    assert_problem(api.client.post(f"/api/v1/jobs/{uuid.uuid4()}/cancel", headers=h), 404)


def test_metrics_downsampling(api: Any) -> None:
    h = api.key()
    job = submit_fit(api, h, make_dataset(api, h)["id"])
    jid = uuid.UUID(job["id"])
    api.add(*[MetricPoint(job_id=jid, name="loss", step=i, value=1.0 / (i + 1)) for i in range(1000)],
            MetricPoint(job_id=jid, name="grad_norm", step=0, value=2.0))
    r = api.client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"name": "loss", "max_points": 200}, headers=h)
    body = r.json()
    steps = [p["step"] for p in body["points"]]
    assert body["total_points"] == 1000 and len(steps) == 200 and steps[0] == 0 and steps[-1] == 999
    assert steps == sorted(steps) and max(np.diff(steps)) - min(np.diff(steps)) <= 1  # evenly spaced
    assert body["names"] == ["grad_norm", "loss"]
    full = api.client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"max_points": 5000}, headers=h).json()
    assert len(full["points"]) == 1000 and full["points"][10] == {"step": 10, "value": 1 / 11}
    empty = api.client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"name": "nope"}, headers=h).json()
    assert empty["points"] == [] and empty["total_points"] == 0
    assert_problem(api.client.get(f"/api/v1/jobs/{job['id']}/metrics", params={"max_points": 1}, headers=h), 422,
                   "max_points")


def test_fit_over_the_memory_budget_is_refused_before_the_worker(sapi: Any) -> None:
    """The API's size limit follows from the library's stated peak memory of the fit (molrg.spec.fit_peak_bytes)."""
    from molrg import spec

    h = sapi.key()
    ds = make_dataset(sapi, h)
    body = {"dataset_id": ds["id"], "n_components": 2, "dims": [2, 3], "method": "subspace_clustering",
            "options": {"n_restarts": 50}}
    peak = spec.fit_peak_bytes(1, ds["n_samples"], ds["ambient_dim"], 2, 3, 50, method="subspace_clustering")
    sapi.settings.job_memory_budget_bytes = peak - 1
    r = sapi.client.post("/api/v1/fits", json=body, headers=h)
    assert r.status_code == 422 and "job_memory_budget_bytes" in r.text, r.text
    sapi.settings.job_memory_budget_bytes = peak
    assert sapi.client.post("/api/v1/fits", json=body, headers=h).status_code == 202
