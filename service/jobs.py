"""Job use cases: submit fit/sample jobs (row first, publish after commit), read, list, cancel, metrics."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.base import utcnow
from db.enums import JobKind, JobStatus, Queue
from db.models import Dataset, FittedModel, Job, MetricPoint
from molrg.spec import FitVariant
from service.auth import Principal
from service.errors import IdempotencyKeyInProgress, InvalidJobState
from service.idempotency import find_replay, request_hash
from service.pagination import paginate
from service.queue import JobQueue
from service.schemas import JobRead, MetricHistory, MetricPointRead, SampleCreate
from service.scoping import API, get_visible, visible
from service.settings import ServiceSettings
from service.validation import validate_fit, validate_sample


@dataclass(frozen=True)
class Submitted:
    job: Job
    replayed: bool


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def to_read(job: Job) -> JobRead:
    links = {"self": f"{API}/jobs/{job.id}", "cancel": f"{API}/jobs/{job.id}/cancel",
             "metrics": f"{API}/jobs/{job.id}/metrics"}
    result = job.result or {}
    if result.get("model_id"):
        links["model"] = f"{API}/models/{result['model_id']}"
    if result.get("sample_set_id"):
        links["sample_set"] = f"{API}/sample-sets/{result['sample_set_id']}"
    if job.params.get("dataset_id"):
        links["dataset"] = f"{API}/datasets/{job.params['dataset_id']}"
    if job.kind == JobKind.sweep and job.params.get("sweep_id"):
        links["sweep"] = f"{API}/sweeps/{job.params['sweep_id']}"
    if job.kind == JobKind.sample and job.params.get("model_id"):
        links["source_model"] = f"{API}/models/{job.params['model_id']}"
    started, finished = _aware(job.started_at), _aware(job.finished_at)
    duration = None
    if started is not None:
        duration = ((finished or utcnow()) - started).total_seconds()
    progress = min(max(float(job.progress or 0.0), 0.0), 1.0)  # tolerate float noise from workers
    return JobRead.model_validate(job).model_copy(
        update={"links": links, "duration_s": duration, "progress": progress})


def _submit(session: Session, queue: JobQueue, principal: Principal, kind: JobKind, params: dict[str, Any],
            settings: ServiceSettings, idempotency_key: str | None, digest: str) -> Submitted:
    job = Job(owner=principal.owner, kind=kind, status=JobStatus.queued, queue=Queue.gpu, params=params,
              progress=0.0, attempts=0, max_attempts=settings.job_max_attempts, cancel_requested=False,
              idempotency_key=idempotency_key, request_hash=digest, queued_at=utcnow())
    session.add(job)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        existing = find_replay(session, Job, principal.owner, idempotency_key, digest)
        if existing is None:
            raise IdempotencyKeyInProgress(f"a request with Idempotency-Key {idempotency_key!r} is in progress") from None
        return Submitted(existing, True)
    # Buffered: published by the session dependency only after the commit succeeded.
    queue.enqueue(kind, job.id, job.queue)
    return Submitted(job, False)


def submit_fit(session: Session, queue: JobQueue, principal: Principal, req: FitVariant, settings: ServiceSettings,
               idempotency_key: str | None) -> Submitted:
    # Params are the request as given (unset options stay unset, so defaults are the worker's = the spec's).
    params = req.model_dump(mode="json", exclude_unset=True) | {"method": req.method}
    digest = request_hash("fits", params)
    if (existing := find_replay(session, Job, principal.owner, idempotency_key, digest)) is not None:
        return Submitted(existing, True)
    dataset = get_visible(session, Dataset, req.dataset_id, principal, "dataset")
    true_dims = (dataset.spec or {}).get("dims") if dataset.has_ground_truth else None
    validate_fit(req, dataset.n_samples, dataset.ambient_dim, true_dims, settings)
    return _submit(session, queue, principal, JobKind.fit, params, settings, idempotency_key, digest)


def submit_sample(session: Session, queue: JobQueue, principal: Principal, model_id: uuid.UUID, req: SampleCreate,
                  settings: ServiceSettings, idempotency_key: str | None) -> Submitted:
    digest = request_hash(f"samples:{model_id}", req.model_dump(mode="json"))
    if (existing := find_replay(session, Job, principal.owner, idempotency_key, digest)) is not None:
        return Submitted(existing, True)
    model = get_visible(session, FittedModel, model_id, principal, "model")
    validate_sample(req, model.ambient_dim, settings)
    params = {"model_id": str(model.id), **req.model_dump(mode="json")}
    return _submit(session, queue, principal, JobKind.sample, params, settings, idempotency_key, digest)


def get_job(session: Session, principal: Principal, job_id: uuid.UUID) -> Job:
    return get_visible(session, Job, job_id, principal, "job")


def list_jobs(session: Session, principal: Principal, kind: JobKind | None, status: JobStatus | None, limit: int,
              cursor: str | None) -> tuple[list[Job], str | None]:
    stmt = visible(select(Job), Job, principal)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    return paginate(session, stmt, Job, limit, cursor)


def cancel_job(session: Session, principal: Principal, job_id: uuid.UUID) -> Job:
    """queued -> cancelled at once; running -> cancelling (the worker stops between steps); else 409."""
    job = get_job(session, principal, job_id)
    now = utcnow()
    # Conditional updates (CONTRACTS.md), so a worker claiming the job concurrently cannot be overwritten.
    done = session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.queued)
        .values(status=JobStatus.cancelled, finished_at=now, cancel_requested=True)
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        done = session.execute(
            update(Job).where(Job.id == job.id, Job.status.in_([JobStatus.running, JobStatus.cancelling]))
            .values(status=JobStatus.cancelling, cancel_requested=True)
        ).rowcount  # type: ignore[attr-defined]
    session.refresh(job)
    if not done:
        raise InvalidJobState(f"job {job.id} is {job.status} and cannot be cancelled")
    return job


def downsample_indices(total: int, max_points: int) -> list[int]:
    """Evenly spaced indices into ``total`` points, at most ``max_points``, first and last kept."""
    if total <= max_points:
        return list(range(total))
    return sorted({int(i) for i in np.round(np.linspace(0, total - 1, max_points))})


def job_metrics(session: Session, principal: Principal, job_id: uuid.UUID, name: str, max_points: int) -> MetricHistory:
    job = get_job(session, principal, job_id)
    rows = session.execute(
        select(MetricPoint.step, MetricPoint.value)
        .where(MetricPoint.job_id == job.id, MetricPoint.name == name).order_by(MetricPoint.step)
    ).all()
    names = list(session.scalars(select(MetricPoint.name).where(MetricPoint.job_id == job.id).distinct()))
    points = [MetricPointRead(step=rows[i][0], value=rows[i][1]) for i in downsample_indices(len(rows), max_points)]
    return MetricHistory(job_id=job.id, name=name, total_points=len(rows), points=points, names=sorted(names))
