"""Pipelines called directly (no Celery) with tiny data, on SQLite and PostgreSQL."""

import threading
import time
import uuid

import numpy as np
import pytest
import torch
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.enums import JobKind, JobStatus
from db.models import FittedModel, Job, MetricPoint, SampleSet
from db.session import session_scope
from tests.db.dbfixtures import add_dataset, add_job, fit_params, get_job
from workers import codec, pipelines
from workers.pipelines import Outcome
from workers.settings import WorkerSettings

SETTINGS = WorkerSettings(heartbeat_interval_s=0.1, stale_after_s=5, job_max_attempts=3)


def cpu() -> torch.device:
    return torch.device("cpu")


def run(maker: sessionmaker[Session], kind: JobKind, job_id: uuid.UUID) -> Outcome:
    return pipelines.execute(kind, job_id, maker=maker, settings=SETTINGS, device=cpu, hostname="test")


def count(maker: sessionmaker[Session], model: type, job_id: uuid.UUID) -> int:
    with maker() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(model.job_id == job_id)) or 0)


def test_fit_pca_is_idempotent(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=12, dims=(2,), ambient=6)
    job_id = add_job(maker, JobKind.fit, fit_params(ds, "pca", [2]))
    assert run(maker, JobKind.fit, job_id) == Outcome.succeeded
    assert run(maker, JobKind.fit, job_id) == Outcome.skipped  # redelivery: claim fails, nothing runs
    job = get_job(maker, job_id)
    assert job.status == JobStatus.succeeded and job.attempts == 1 and job.progress == 1.0
    assert count(maker, FittedModel, job_id) == 1
    with maker() as s:
        model = s.scalars(select(FittedModel).where(FittedModel.job_id == job_id)).one()
        assert job.result == {"model_id": str(model.id)}
        m = model.metrics
        assert m["recovery_error"] is not None and m["recovery_error"] < 1e-6  # noiseless rank-2 data
        assert len(m["recovery_errors"]) == 1 and m["stopped"] is False
        assert 0.999 < m["explained_energy"] <= 1.0 + 1e-9
        bases = codec.npz_to_bases(model.bases_npz)
        assert [b.shape for b in bases] == [(6, 2)] and model.dims == [2] and model.ambient_dim == 6

    # Even if the job were delivered again after being re-queued, no second model appears.
    with session_scope(maker) as s:
        s.get_one(Job, job_id).status = JobStatus.queued
    assert run(maker, JobKind.fit, job_id) == Outcome.succeeded
    assert count(maker, FittedModel, job_id) == 1
    assert get_job(maker, job_id).result == job.result


def test_fit_diffusion_stores_loss_history_once(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=12, dims=(2,), ambient=6)
    job_id = add_job(maker, JobKind.fit, fit_params(ds, "diffusion", [2], {"steps": 20, "callback_every": 5}))
    assert run(maker, JobKind.fit, job_id) == Outcome.succeeded
    with session_scope(maker) as s:
        s.get_one(Job, job_id).status = JobStatus.queued
    assert run(maker, JobKind.fit, job_id) == Outcome.succeeded
    with maker() as s:
        model = s.scalars(select(FittedModel).where(FittedModel.job_id == job_id)).one()
        steps = s.scalars(select(MetricPoint.step).where(MetricPoint.job_id == job_id, MetricPoint.name == "loss")
                          .order_by(MetricPoint.step)).all()
    assert len(steps) > 0 and steps == list(range(len(steps)))
    assert model.metrics["final_loss"] is not None and model.metrics["diffusion_loss"] is not None


def _fitted_model(maker: sessionmaker[Session]) -> str:
    """The id of a small pca model fitted through the pipeline."""
    ds = add_dataset(maker, n=12, dims=(2,), ambient=6)
    fit_id = add_job(maker, JobKind.fit, fit_params(ds, "pca", [2]))
    assert run(maker, JobKind.fit, fit_id) == Outcome.succeeded
    return str(get_job(maker, fit_id).result["model_id"])  # type: ignore[index]


def _cancel_once_running(maker: sessionmaker[Session], kind: JobKind, job_id: uuid.UUID) -> None:
    """Run the job in a thread, request a cancel once it reports progress (as the service does for a
    running job), and check that it ends ``cancelled`` within 5 s."""
    outcome: list[Outcome] = []
    t = threading.Thread(target=lambda: outcome.append(run(maker, kind, job_id)))
    t.start()
    deadline = time.monotonic() + 30
    while (job := get_job(maker, job_id)).progress <= 0:
        assert job.status in (JobStatus.queued, JobStatus.running), job.error
        assert time.monotonic() < deadline, f"{kind} job never reported progress"
        time.sleep(0.05)
    with session_scope(maker) as s:
        row = s.get_one(Job, job_id)
        row.status, row.cancel_requested = JobStatus.cancelling, True
    t0 = time.monotonic()
    t.join(timeout=30)
    assert not t.is_alive() and outcome == [Outcome.cancelled]
    assert time.monotonic() - t0 < 5
    assert get_job(maker, job_id).status == JobStatus.cancelled


def test_sample_pipeline(maker: sessionmaker[Session]) -> None:
    model_id = _fitted_model(maker)
    params = {"model_id": model_id, "n_samples": 6, "sampler": "heun", "steps": 8, "seed": 1}
    job_id = add_job(maker, JobKind.sample, params)
    assert run(maker, JobKind.sample, job_id) == Outcome.succeeded
    assert run(maker, JobKind.sample, job_id) == Outcome.skipped
    assert count(maker, SampleSet, job_id) == 1
    with maker() as s:
        ss = s.scalars(select(SampleSet).where(SampleSet.job_id == job_id)).one()
        samples = codec.npy_to_array(ss.samples_npy)
        assert samples.shape == (6, 6) and np.isfinite(samples).all()
        assert isinstance(ss.diagnostics, dict) and ss.diagnostics
        assert get_job(maker, job_id).result == {"sample_set_id": str(ss.id)}


def test_bad_params_fail_readably(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=12, dims=(2,), ambient=6)
    too_big = add_job(maker, JobKind.fit, fit_params(ds, "pca", [7]))
    assert run(maker, JobKind.fit, too_big) == Outcome.failed
    job = get_job(maker, too_big)
    assert job.status == JobStatus.failed and job.error and job.error.startswith("ValueError: ")
    assert "Traceback" not in job.error
    missing = add_job(maker, JobKind.fit, fit_params(uuid.uuid4(), "pca", [2]))
    assert run(maker, JobKind.fit, missing) == Outcome.failed
    assert "not found" in (get_job(maker, missing).error or "")
    assert count(maker, FittedModel, too_big) == 0


def test_attempts_exhausted(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker)
    job_id = add_job(maker, JobKind.fit, fit_params(ds), attempts=3, max_attempts=3)
    assert run(maker, JobKind.fit, job_id) == Outcome.failed
    job = get_job(maker, job_id)
    assert job.attempts == 4 and "gave up after 3 attempts" in (job.error or "")


def test_time_limit_fails_job(maker: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    def too_slow(*_: object) -> Outcome:
        raise SoftTimeLimitExceeded()

    monkeypatch.setitem(pipelines.RUNNERS, JobKind.fit, too_slow)
    job_id = add_job(maker, JobKind.fit, fit_params(add_dataset(maker)))
    assert run(maker, JobKind.fit, job_id) == Outcome.failed
    assert get_job(maker, job_id).error == "TimeLimitExceeded: time limit of 3600 s exceeded"


def test_cancel_long_diffusion_fit(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=12, dims=(2,), ambient=6)
    job_id = add_job(maker, JobKind.fit,
                     fit_params(ds, "diffusion", [2], {"steps": 1_000_000, "callback_every": 1, "tol": 1e-300}))
    _cancel_once_running(maker, JobKind.fit, job_id)
    assert count(maker, FittedModel, job_id) == 0
    # The loss history so far is kept: one finite row per step run, steps 0..n-1.
    with maker() as s:
        rows = s.execute(select(MetricPoint.step, MetricPoint.value)
                         .where(MetricPoint.job_id == job_id, MetricPoint.name == "loss").order_by(MetricPoint.step)).all()
    assert len(rows) >= 1 and [step for step, _ in rows] == list(range(len(rows)))
    assert all(np.isfinite(v) for _, v in rows)


def test_reap_pipeline_publishes_after_commit(maker: sessionmaker[Session]) -> None:
    from datetime import timedelta

    from db.base import utcnow

    stale = add_job(maker, JobKind.fit, {}, status=JobStatus.running, attempts=1,
                    heartbeat_at=utcnow() - timedelta(seconds=600))
    published: list[tuple[str, str]] = []

    def publish(item: object) -> None:
        assert get_job(maker, stale).status == JobStatus.queued  # committed before publishing
        published.append((str(item.job_id), item.queue))  # type: ignore[attr-defined]

    pipelines.run_reap(maker, SETTINGS, publish)
    assert published == [(str(stale), "gpu")]


def test_cancel_long_sample_job_between_sampler_steps(maker: sessionmaker[Session]) -> None:
    # 1,000 sampler steps (the declared maximum) of 300k samples: a minute or more if not stopped
    params = {"model_id": _fitted_model(maker), "n_samples": 300_000, "sampler": "heun", "steps": 1000, "seed": 1}
    job_id = add_job(maker, JobKind.sample, params)
    _cancel_once_running(maker, JobKind.sample, job_id)
    detail = get_job(maker, job_id).progress_detail or {}  # the last progress a beat wrote: per sampler step
    assert detail["total_steps"] == 1000 and 1 <= detail["step"] < 1000 and detail["sigma"] > 0
    assert count(maker, SampleSet, job_id) == 0


@pytest.mark.parametrize("options", [{}, {"model": "softmax", "steps": 60}])
def test_default_k2_diffusion_fit_reports_true_progress(maker: sessionmaker[Session], options: dict) -> None:
    """Progress reaches 1.0 and the last report names the true last step (restarts batched count once)."""
    ds = add_dataset(maker, n=40, dims=(2, 2), ambient=8)
    job_id = add_job(maker, JobKind.fit, fit_params(ds, "diffusion", [2, 2], options))
    assert run(maker, JobKind.fit, job_id) == Outcome.succeeded
    job = get_job(maker, job_id)
    detail = job.progress_detail or {}
    assert job.progress == 1.0
    assert detail["step"] == detail["total_steps"], detail  # "825/825" when it stopped early, not "650/2000"
    assert detail["step"] <= (options.get("steps") or 2000)
    # an exact-loss fit that ended early says why; the Monte-Carlo soft-max model has no convergence test
    assert detail["converged"] is (detail["step"] < 2000 if not options else False), detail
