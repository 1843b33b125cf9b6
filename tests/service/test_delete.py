"""DELETE of datasets, models, sample sets, jobs and sweeps: owner scope, 409 naming the unfinished job,
the documented cascade (rows, metrics, plots, sweep trials/chunks/heatmaps), 404 on a second delete.
Runs on SQLite and PostgreSQL (the ``api`` fixture)."""

import uuid
from typing import Any

from sqlalchemy import func, select, update

from db.base import utcnow
from db.enums import JobKind, JobStatus
from db.models import (
    Dataset,
    FittedModel,
    Job,
    MetricPoint,
    Plot,
    SampleSet,
    Sweep,
    SweepChunk,
    SweepHeatmap,
    SweepTrial,
)
from db.session import session_scope
from tests.service.factories import insert_model, insert_sample_set, make_dataset
from tests.service.test_datasets import assert_problem

API = "/api/v1"
TABLES = (Dataset, Job, FittedModel, SampleSet, MetricPoint, Plot, Sweep, SweepChunk, SweepTrial, SweepHeatmap)


def counts(api: Any) -> dict[str, int]:
    with api.maker() as s:
        return {t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0) for t in TABLES}


def add_metrics_and_plot(api: Any, job_id: str, kind: str = "loss") -> None:
    jid = uuid.UUID(job_id)
    api.add(*[MetricPoint(job_id=jid, name="loss", step=i, value=1.0 / (i + 1)) for i in range(3)],
            Plot(job_id=jid, kind=kind, title="t", width=1, height=1, png=b"\x89PNG"))


def add_job(api: Any, owner: str, kind: JobKind, status: JobStatus, params: dict[str, Any]) -> str:
    job_id = uuid.uuid4()
    api.add(Job(id=job_id, owner=owner, kind=kind, status=status, queue="gpu", params=params, progress=0.0,
                attempts=0, queued_at=utcnow()))
    return str(job_id)


def add_sweep(api: Any, owner: str, status: JobStatus = JobStatus.succeeded,
              chunk_status: str = "done") -> tuple[str, str]:
    job_id, sweep_id = uuid.uuid4(), uuid.uuid4()
    with session_scope(api.maker) as s:
        s.add(Job(id=job_id, owner=owner, kind=JobKind.sweep, status=status, queue="gpu",
                  params={"sweep_id": str(sweep_id)}, progress=1.0, attempts=1))
        s.flush()
        s.add(Sweep(id=sweep_id, owner=owner, job_id=job_id, spec={}, fits_total=1, fits_done=1, chunks_total=1,
                    chunks_done=1, report_fits=1, report_final=True))
        s.flush()
        s.add_all([
            SweepChunk(sweep_id=sweep_id, index=0, spec={}, n_fits=1, status=chunk_status, attempts=1),
            SweepTrial(sweep_id=sweep_id, chunk_index=0, method="subspace_clustering", ambient_dim=8,
                       n_components=2, d=2, samples=10, trial=0, seed=1, error=0.1, success=True, fit_seconds=0.1),
            SweepHeatmap(sweep_id=sweep_id, method="subspace_clustering", n_components=2, ambient_dim=8,
                         width=1, height=1, png=b"\x89PNG"),
        ])
    return str(job_id), str(sweep_id)


def test_delete_dataset_cascades_to_models_samples_jobs_metrics_plots(api: Any) -> None:
    h = api.key()
    empty = counts(api)
    ds = make_dataset(api, h)
    fit_job, model = insert_model(api, "alice", ds["id"])
    add_metrics_and_plot(api, fit_job)
    sample_set = insert_sample_set(api, "alice", model)
    sample_job = api.client.get(f"{API}/sample-sets/{sample_set}", headers=h).json()["job_id"]
    add_metrics_and_plot(api, sample_job, kind="grid")
    failed_fit = add_job(api, "alice", JobKind.fit, JobStatus.failed, {"dataset_id": ds["id"]})
    other = make_dataset(api, h)  # an unrelated dataset and model stay
    _, other_model = insert_model(api, "alice", other["id"])

    r = api.client.delete(f"{API}/datasets/{ds['id']}", headers=h)
    assert r.status_code == 204 and r.content == b"", r.text
    for path in (f"datasets/{ds['id']}", f"models/{model}", f"sample-sets/{sample_set}", f"jobs/{fit_job}",
                 f"jobs/{sample_job}", f"jobs/{failed_fit}", f"models/{model}/plots"):
        assert api.client.get(f"{API}/{path}", headers=h).status_code == 404, path
    left = counts(api)
    assert left["metrics"] == empty["metrics"] and left["plots"] == empty["plots"]
    assert (left["datasets"], left["models"], left["jobs"], left["sample_sets"]) == (1, 1, 1, 0)
    assert api.client.get(f"{API}/models/{other_model}", headers=h).status_code == 200
    assert_problem(api.client.delete(f"{API}/datasets/{ds['id']}", headers=h), 404, code="not_found")


def test_delete_is_owner_scoped(api: Any) -> None:
    alice, bob = api.key("alice"), api.key("bob")
    ds = make_dataset(api, alice)
    job, model = insert_model(api, "alice", ds["id"])
    sample_set = insert_sample_set(api, "alice", model)
    sweep_job, sweep = add_sweep(api, "alice")
    for path in (f"datasets/{ds['id']}", f"models/{model}", f"sample-sets/{sample_set}", f"jobs/{job}",
                 f"sweeps/{sweep}", f"jobs/{sweep_job}"):
        assert_problem(api.client.delete(f"{API}/{path}", headers=bob), 404, code="not_found")
        assert api.client.get(f"{API}/{path}", headers=alice).status_code == 200, path
    assert api.client.delete(f"{API}/models/{model}", headers=api.key("root", admin=True)).status_code == 204


def test_dataset_with_a_running_fit_is_409_naming_the_job(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    job = add_job(api, "alice", JobKind.fit, JobStatus.running, {"dataset_id": ds["id"]})
    body = assert_problem(api.client.delete(f"{API}/datasets/{ds['id']}", headers=h), 409, code="resource_in_use")
    assert job in body["detail"] and "running" in body["detail"]
    assert f"POST {API}/jobs/{job}/cancel" in body["detail"]
    assert api.client.get(f"{API}/datasets/{ds['id']}", headers=h).status_code == 200
    assert api.client.get(f"{API}/jobs/{job}", headers=h).status_code == 200
    # the job itself: cancel first; a cancelling job says to wait
    body = assert_problem(api.client.delete(f"{API}/jobs/{job}", headers=h), 409, code="resource_in_use")
    assert f"job {job} cannot be deleted: it is running" in body["detail"]
    assert api.client.post(f"{API}/jobs/{job}/cancel", headers=h).json()["status"] == "cancelling"
    body = assert_problem(api.client.delete(f"{API}/datasets/{ds['id']}", headers=h), 409)
    assert "cancelling" in body["detail"] and "once it has stopped" in body["detail"]
    with session_scope(api.maker) as s:
        s.execute(update(Job).where(Job.id == uuid.UUID(job)).values(status=JobStatus.cancelled))
    assert api.client.delete(f"{API}/datasets/{ds['id']}", headers=h).status_code == 204
    assert api.client.get(f"{API}/jobs/{job}", headers=h).status_code == 404


def test_model_with_a_queued_sample_job_is_409_then_cascades(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    fit_job, model = insert_model(api, "alice", ds["id"])
    add_metrics_and_plot(api, fit_job)
    queued = add_job(api, "alice", JobKind.sample, JobStatus.queued, {"model_id": model})
    for path in (f"models/{model}", f"jobs/{fit_job}", f"datasets/{ds['id']}"):
        body = assert_problem(api.client.delete(f"{API}/{path}", headers=h), 409, code="resource_in_use")
        assert f"sample job {queued}, which is queued" in body["detail"], body
    api.client.post(f"{API}/jobs/{queued}/cancel", headers=h)  # queued -> cancelled at once
    kept_set = insert_sample_set(api, "alice", model)
    assert api.client.delete(f"{API}/models/{model}", headers=h).status_code == 204
    for path in (f"models/{model}", f"jobs/{fit_job}", f"jobs/{queued}", f"sample-sets/{kept_set}"):
        assert api.client.get(f"{API}/{path}", headers=h).status_code == 404, path
    assert api.client.get(f"{API}/datasets/{ds['id']}", headers=h).status_code == 200
    assert counts(api)["metrics"] == 0 and counts(api)["plots"] == 0
    assert_problem(api.client.delete(f"{API}/models/{model}", headers=h), 404)


def test_delete_fit_job_deletes_its_model_and_sample_set_its_job(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    fit_job, model = insert_model(api, "alice", ds["id"])
    sample_set = insert_sample_set(api, "alice", model)
    sample_job = api.client.get(f"{API}/sample-sets/{sample_set}", headers=h).json()["job_id"]
    add_metrics_and_plot(api, sample_job, kind="grid")
    assert api.client.delete(f"{API}/sample-sets/{sample_set}", headers=h).status_code == 204
    assert api.client.get(f"{API}/jobs/{sample_job}", headers=h).status_code == 404
    assert api.client.get(f"{API}/models/{model}", headers=h).status_code == 200
    assert_problem(api.client.delete(f"{API}/sample-sets/{sample_set}", headers=h), 404)
    assert api.client.delete(f"{API}/jobs/{fit_job}", headers=h).status_code == 204
    assert api.client.get(f"{API}/models/{model}", headers=h).status_code == 404
    assert_problem(api.client.delete(f"{API}/jobs/{fit_job}", headers=h), 404)
    assert counts(api)["plots"] == 0


def test_delete_sweep_and_its_rows(api: Any) -> None:
    h = api.key()
    before = counts(api)
    running_job, running = add_sweep(api, "alice", JobStatus.running, chunk_status="running")
    body = assert_problem(api.client.delete(f"{API}/sweeps/{running}", headers=h), 409, code="resource_in_use")
    assert running_job in body["detail"] and "cancel it first" in body["detail"]
    # a cancelled sweep whose chunk has not stopped yet
    with session_scope(api.maker) as s:
        s.execute(update(Job).where(Job.id == uuid.UUID(running_job)).values(status=JobStatus.cancelled))
    body = assert_problem(api.client.delete(f"{API}/sweeps/{running}", headers=h), 409)
    assert "chunk 0" in body["detail"] and "still running" in body["detail"]
    with session_scope(api.maker) as s:
        s.execute(update(SweepChunk).where(SweepChunk.sweep_id == uuid.UUID(running)).values(status="cancelled"))
    assert api.client.delete(f"{API}/sweeps/{running}", headers=h).status_code == 204
    job, sweep = add_sweep(api, "alice")
    assert api.client.delete(f"{API}/jobs/{job}", headers=h).status_code == 204  # the job takes its sweep
    assert api.client.get(f"{API}/sweeps/{sweep}", headers=h).status_code == 404
    assert_problem(api.client.delete(f"{API}/sweeps/{sweep}", headers=h), 404)
    assert counts(api) == before


def test_delete_routes_are_documented(sapi: Any) -> None:
    spec = sapi.client.get("/openapi.json").json()
    for path in ("/datasets/{dataset_id}", "/models/{model_id}", "/sample-sets/{sample_set_id}", "/jobs/{job_id}",
                 "/sweeps/{sweep_id}"):
        op = spec["paths"][API + path]["delete"]
        assert {"204", "404", "409"} <= op["responses"].keys(), path
        assert "cancel it" in op["description"] and "deleting a dataset" in op["description"].lower()
