"""Job state transitions used by the workers (claim, heartbeat, finish, fail, cancel, reap).

Commit policy: every function here runs its statements in the caller's session and never commits;
the caller owns the transaction (one ``session_scope`` per transition), so a terminal status can be
written in the same transaction as the results it announces. Every write is a conditional UPDATE,
so two workers, or a worker and the reaper, can never both win the same transition.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from db.base import utcnow
from db.enums import JobStatus
from db.models import Job

ACTIVE = (JobStatus.running, JobStatus.cancelling)


@dataclass(frozen=True)
class Claim:
    """A won claim: the attempt number identifies this run in every later guarded write."""

    job_id: uuid.UUID
    kind: str
    attempt: int
    max_attempts: int
    params: dict[str, Any]
    owner: str


@dataclass(frozen=True)
class HeartbeatState:
    """What a heartbeat learned: whether this run still owns the job and whether to cancel."""

    owned: bool
    cancel_requested: bool


@dataclass(frozen=True)
class Republish:
    """A job the reaper put (back) on the queue; publish it after the commit."""

    job_id: uuid.UUID
    kind: str
    queue: str


@dataclass
class ReapReport:
    """What one reaper pass did."""

    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]
    cancelled: list[uuid.UUID]
    republished: list[Republish]


def _owned(job_id: uuid.UUID, attempt: int) -> Any:
    return and_(Job.id == job_id, Job.attempts == attempt, Job.status.in_(ACTIVE))


def claim_job(session: Session, job_id: uuid.UUID, worker: str, now: datetime | None = None) -> Claim | None:
    """``queued -> running`` with attempts+1; None when the job is not queued (someone else has it)."""
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(status=JobStatus.running, attempts=Job.attempts + 1, started_at=now, heartbeat_at=now,
                worker=worker[:200], error=None, finished_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.execute(
        select(Job.kind, Job.attempts, Job.max_attempts, Job.params, Job.owner).where(Job.id == job_id)
    ).one()
    return Claim(job_id, str(row.kind), int(row.attempts), int(row.max_attempts), dict(row.params or {}),
                 row.owner)


def heartbeat(
    session: Session,
    job_id: uuid.UUID,
    attempt: int,
    progress: float | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> HeartbeatState:
    """Stamp ``heartbeat_at`` (and progress) if this attempt still owns the job; report cancel_requested."""
    values: dict[str, Any] = {"heartbeat_at": now or utcnow()}
    if progress is not None:
        values["progress"] = float(min(max(progress, 0.0), 1.0))
    if detail is not None:
        values["progress_detail"] = detail
    result = session.execute(
        update(Job).where(_owned(job_id, attempt)).values(**values).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return HeartbeatState(owned=False, cancel_requested=False)
    row = session.execute(select(Job.status, Job.cancel_requested).where(Job.id == job_id)).one()
    return HeartbeatState(owned=True,
                          cancel_requested=bool(row.cancel_requested) or row.status == JobStatus.cancelling)


def finish_job(session: Session, job_id: uuid.UUID, attempt: int, result: dict[str, Any],
               now: datetime | None = None) -> bool:
    """``running -> succeeded`` with the result; False when this attempt no longer owns the job."""
    now = now or utcnow()
    res = session.execute(
        update(Job)
        .where(_owned(job_id, attempt))
        .values(status=JobStatus.succeeded, result=result, progress=1.0, finished_at=now, heartbeat_at=now,
                error=None)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


def fail_job(session: Session, job_id: uuid.UUID, attempt: int | None, error: str,
             now: datetime | None = None) -> bool:
    """``running|cancelling -> failed`` with a readable error; attempt None skips the ownership guard."""
    now = now or utcnow()
    cond = _owned(job_id, attempt) if attempt is not None else and_(Job.id == job_id, Job.status.in_(ACTIVE))
    res = session.execute(
        update(Job).where(cond).values(status=JobStatus.failed, error=error[:10_000], finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


def mark_cancelled(session: Session, job_id: uuid.UUID, attempt: int, now: datetime | None = None) -> bool:
    """``running|cancelling -> cancelled`` after the run stopped on request."""
    res = session.execute(
        update(Job).where(_owned(job_id, attempt))
        .values(status=JobStatus.cancelled, cancel_requested=True, finished_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


def release_job(session: Session, job_id: uuid.UUID, attempt: int, now: datetime | None = None) -> bool:
    """``running -> queued`` after a transient infrastructure error, so the job can be delivered again."""
    res = session.execute(
        update(Job).where(_owned(job_id, attempt), Job.status == JobStatus.running)
        .values(status=JobStatus.queued, queued_at=now or utcnow(), worker=None, heartbeat_at=None)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


def reap(
    session: Session,
    stale_after_s: float,
    republish_after_s: float,
    now: datetime | None = None,
) -> ReapReport:
    """Recover jobs whose worker died or whose message was lost; the caller publishes ``republished``."""
    now = now or utcnow()
    stale_cutoff = now - timedelta(seconds=stale_after_s)
    report = ReapReport([], [], [], [])
    last_seen = func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at)
    stale = session.execute(
        select(Job.id, Job.kind, Job.queue, Job.status, Job.attempts, Job.max_attempts, Job.heartbeat_at)
        .where(Job.status.in_(ACTIVE), last_seen < stale_cutoff)
        .order_by(Job.created_at)
    ).all()
    for row in stale:
        # Re-check staleness and the attempt in the UPDATE: a heartbeat may have landed meanwhile.
        guard = and_(Job.id == row.id, Job.status == row.status, Job.attempts == row.attempts,
                     last_seen < stale_cutoff)
        beat = row.heartbeat_at.isoformat() if row.heartbeat_at else "never"
        if row.status == JobStatus.cancelling:
            values: dict[str, Any] = {"status": JobStatus.cancelled, "finished_at": now}
            bucket = report.cancelled
        elif row.attempts >= row.max_attempts:
            values = {"status": JobStatus.failed, "finished_at": now,
                      "error": f"worker lost {row.attempts} times: last heartbeat at {beat}"}
            bucket = report.failed
        else:
            values = {"status": JobStatus.queued, "queued_at": now, "worker": None, "heartbeat_at": None,
                      "error": f"worker lost (attempt {row.attempts}): last heartbeat at {beat}; re-queued"}
            bucket = report.requeued
        res = session.execute(update(Job).where(guard).values(**values)
                              .execution_options(synchronize_session=False))
        if res.rowcount == 1:  # type: ignore[attr-defined]
            bucket.append(row.id)
            if bucket is report.requeued:
                report.republished.append(Republish(row.id, str(row.kind), row.queue))

    queued_cutoff = now - timedelta(seconds=republish_after_s)
    queued_at = func.coalesce(Job.queued_at, Job.created_at)
    lost = session.execute(
        select(Job.id, Job.kind, Job.queue).where(Job.status == JobStatus.queued, queued_at < queued_cutoff)
        .order_by(Job.created_at)
    ).all()
    for queued in lost:
        res = session.execute(
            update(Job).where(Job.id == queued.id, Job.status == JobStatus.queued, queued_at < queued_cutoff)
            .values(queued_at=now).execution_options(synchronize_session=False)
        )
        if res.rowcount == 1:  # type: ignore[attr-defined]
            report.republished.append(Republish(queued.id, str(queued.kind), queued.queue))
    session.flush()
    return report

