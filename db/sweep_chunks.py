"""Sweep persistence, one chunk's run and the reaper's share: claim, heartbeat, complete, end, reap.

Each chunk is claimed by one worker with a conditional ``pending -> running`` update (attempts+1),
heartbeats while it runs, and is completed in ONE transaction that inserts its trials (``ON CONFLICT
DO NOTHING`` on the trial's grid key), marks the chunk ``done`` and recounts the sweep's progress. A
chunk whose worker died goes back to ``pending`` (the chunk, never the sweep). The sweep row itself
(planning, cancel, fail, reports) is :mod:`db.sweeps`. Like :mod:`db.jobs`, nothing here commits: the
caller owns the transaction.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from db.base import utcnow
from db.enums import JobKind, JobStatus
from db.models import Job, Sweep, SweepChunk, SweepTrial
from db.sweeps import (
    JOB_ACTIVE,
    ChunkStatus,
    _insert,
    chunk_counts,
    fail_sweep,
    job_status,
    settle_cancel,
)

TRIAL_KEY = ("sweep_id", "method", "ambient_dim", "n_components", "d", "samples", "trial")
TRIAL_COLUMNS = (*TRIAL_KEY, "chunk_index", "seed", "error", "mean_error", "success", "fit_seconds",
                 "memorised_fraction", "generalisation_score", "on_support_fraction", "scores_by_step")


@dataclass(frozen=True)
class ChunkClaim:
    """A won chunk claim; ``attempt`` guards every later write of this run."""

    chunk_id: uuid.UUID
    sweep_id: uuid.UUID
    job_id: uuid.UUID
    index: int
    attempt: int
    spec: dict[str, Any]


@dataclass(frozen=True)
class ClaimRefused:
    """Why a chunk was not claimed: ``not_pending`` (someone has it / it is finished), ``job_inactive``
    (the sweep job is cancelling or terminal), ``exhausted`` (too many attempts)."""

    reason: str


@dataclass(frozen=True)
class ChunkBeat:
    """What a chunk heartbeat learned."""

    owned: bool
    cancel: bool


@dataclass(frozen=True)
class Completion:
    """Result of :func:`complete_chunk`: ``owned`` False means nothing was written."""

    owned: bool
    chunks_done: int = 0
    chunks_total: int = 0
    fits_done: int = 0

    @property
    def last(self) -> bool:
        return self.owned and self.chunks_total > 0 and self.chunks_done >= self.chunks_total


@dataclass
class ChunkReapReport:
    """What one chunk-reaper pass did; the caller publishes ``republish`` after the commit."""

    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    republish: list[uuid.UUID] = field(default_factory=list)
    kept_alive: list[uuid.UUID] = field(default_factory=list)
    cancelled_jobs: list[uuid.UUID] = field(default_factory=list)


# --- one chunk's run ---------------------------------------------------------------------------------


def claim_chunk(session: Session, chunk_id: uuid.UUID, worker: str, max_attempts: int,
                now: datetime | None = None) -> ChunkClaim | ClaimRefused:
    """``pending -> running`` (attempts+1) if the sweep job is still running and attempts remain."""
    now = now or utcnow()
    row = session.execute(
        select(SweepChunk.sweep_id, SweepChunk.status, SweepChunk.attempts, Sweep.job_id)
        .join(Sweep, Sweep.id == SweepChunk.sweep_id).where(SweepChunk.id == chunk_id)
    ).one_or_none()
    if row is None or row.status != ChunkStatus.pending:
        return ClaimRefused("not_pending")
    state = job_status(session, row.job_id)
    if state is None or state[0] != JobStatus.running or state[1]:
        return ClaimRefused("job_inactive")
    if row.attempts >= max_attempts:
        return ClaimRefused("exhausted")
    res = session.execute(
        update(SweepChunk).where(SweepChunk.id == chunk_id, SweepChunk.status == ChunkStatus.pending,
                                 SweepChunk.attempts == row.attempts)
        .values(status=ChunkStatus.running, attempts=SweepChunk.attempts + 1, worker=worker[:200],
                started_at=now, heartbeat_at=now, error=None, progress=None)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return ClaimRefused("not_pending")
    index, attempts, spec = session.execute(select(SweepChunk.index, SweepChunk.attempts, SweepChunk.spec)
                                            .where(SweepChunk.id == chunk_id)).one()
    return ChunkClaim(chunk_id, row.sweep_id, row.job_id, int(index), int(attempts), dict(spec))


def _chunk_owned(claim: ChunkClaim) -> Any:
    return and_(SweepChunk.id == claim.chunk_id, SweepChunk.status == ChunkStatus.running,
                SweepChunk.attempts == claim.attempt)


def chunk_heartbeat(session: Session, claim: ChunkClaim, now: datetime | None = None,
                    progress: dict[str, Any] | None = None) -> ChunkBeat:
    """Stamp the chunk (and its sweep job, whose liveness is its chunks'), store the run's last
    ``progress`` report when given; report ownership and cancel."""
    now = now or utcnow()
    values: dict[str, Any] = {"heartbeat_at": now}
    if progress is not None:
        values["progress"] = progress
    res = session.execute(update(SweepChunk).where(_chunk_owned(claim)).values(**values)
                          .execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return ChunkBeat(owned=False, cancel=False)
    job_values: dict[str, Any] = {"heartbeat_at": now}
    if progress is not None and progress.get("step") is not None:
        # the sweep job shows the training step of the chunk that reported last, beside the counts
        # (_recount writes the counts alone when a chunk completes; the next beat adds the step again)
        counts = session.execute(select(Sweep.chunks_done, Sweep.chunks_total, Sweep.fits_done, Sweep.fits_total)
                                 .where(Sweep.id == claim.sweep_id)).one()
        step, steps = float(progress["step"]), float(progress.get("total_steps") or 0)
        if counts.chunks_total and steps:  # this chunk's training counts as its share, never moving back
            share = (counts.chunks_done + step / steps) / counts.chunks_total
            current = session.execute(select(Job.progress).where(Job.id == claim.job_id)).scalar_one_or_none()
            job_values["progress"] = min(max(share, float(current or 0.0)), 0.999)
        job_values["progress_detail"] = {
            "chunks_done": int(counts.chunks_done), "chunks_total": int(counts.chunks_total or 0),
            "fits_done": int(counts.fits_done), "fits_total": int(counts.fits_total), "chunk": claim.index,
            **{k: progress[k] for k in ("step", "total_steps", "networks", "loss") if k in progress}}
    session.execute(update(Job).where(Job.id == claim.job_id, Job.status == JobStatus.running)
                    .values(**job_values).execution_options(synchronize_session=False))
    state = job_status(session, claim.job_id)
    cancel = state is None or state[0] != JobStatus.running or state[1]
    return ChunkBeat(owned=True, cancel=cancel)


def complete_chunk(session: Session, claim: ChunkClaim, trials: Sequence[dict[str, Any]],
                   now: datetime | None = None, progress: dict[str, Any] | None = None) -> Completion:
    """Store a chunk's trials, mark it done and recount progress, all in the caller's transaction.

    The ownership guard is the first statement, so a run whose chunk was re-queued (it looked dead)
    writes nothing; trials conflict on their grid key and are never duplicated. The sweep row is
    locked before the counts are read, so concurrent completions count each other.
    """
    now = now or utcnow()
    res = session.execute(
        update(SweepChunk).where(_chunk_owned(claim))
        .values(status=ChunkStatus.done, finished_at=now, heartbeat_at=now,
                **({"progress": progress} if progress is not None else {}))
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return Completion(owned=False)
    session.execute(select(Sweep.id).where(Sweep.id == claim.sweep_id).with_for_update())
    insert_trials(session, claim.sweep_id, claim.index, trials)
    return _recount(session, claim.sweep_id, claim.job_id, now)


def insert_trials(session: Session, sweep_id: uuid.UUID, chunk_index: int,
                  trials: Sequence[dict[str, Any]]) -> None:
    """Insert trial rows, skipping any whose grid key is already stored."""
    rows = [{"sweep_id": sweep_id, "chunk_index": chunk_index,
             **{k: t.get(k) for k in TRIAL_COLUMNS if k not in ("sweep_id", "chunk_index")}} for t in trials]
    for start in range(0, len(rows), 1000):
        session.execute(_insert(session, SweepTrial).values(rows[start:start + 1000])
                        .on_conflict_do_nothing(index_elements=list(TRIAL_KEY)))


def _recount(session: Session, sweep_id: uuid.UUID, job_id: uuid.UUID, now: datetime) -> Completion:
    chunks_done = session.execute(select(func.count()).select_from(SweepChunk).where(
        SweepChunk.sweep_id == sweep_id, SweepChunk.status == ChunkStatus.done)).scalar_one()
    fits_done = session.execute(select(func.count()).select_from(SweepTrial)
                                .where(SweepTrial.sweep_id == sweep_id)).scalar_one()
    total = session.execute(select(Sweep.chunks_total, Sweep.fits_total).where(Sweep.id == sweep_id)).one()
    session.execute(update(Sweep).where(Sweep.id == sweep_id)
                    .values(chunks_done=chunks_done, fits_done=fits_done)
                    .execution_options(synchronize_session=False))
    chunks_total = int(total.chunks_total or 0)
    progress = chunks_done / chunks_total if chunks_total else 0.0
    detail = {"chunks_done": int(chunks_done), "chunks_total": chunks_total, "fits_done": int(fits_done),
              "fits_total": int(total.fits_total)}
    session.execute(update(Job).where(Job.id == job_id, Job.status.in_(JOB_ACTIVE))
                    # 1.0 is written by finish_sweep, once the report is stored.
                    .values(progress=min(progress, 0.999), progress_detail=detail, heartbeat_at=now)
                    .execution_options(synchronize_session=False))
    return Completion(True, int(chunks_done), chunks_total, int(fits_done))


def end_chunk(session: Session, claim: ChunkClaim, status: ChunkStatus, error: str | None = None,
              now: datetime | None = None) -> bool:
    """``running -> cancelled | failed | pending`` for this attempt (pending: give it back unrun)."""
    values: dict[str, Any] = {"status": status, "error": None if error is None else error[:10_000]}
    if status == ChunkStatus.pending:
        values.update(queued_at=now or utcnow(), worker=None, heartbeat_at=None)
    else:
        values["finished_at"] = now or utcnow()
    res = session.execute(update(SweepChunk).where(_chunk_owned(claim)).values(**values)
                          .execution_options(synchronize_session=False))
    return res.rowcount == 1  # type: ignore[attr-defined]


# --- the reaper's share ------------------------------------------------------------------------------


def reap_chunks(session: Session, stale_after_s: float, republish_after_s: float, max_attempts: int,
                now: datetime | None = None) -> ChunkReapReport:
    """Recover lost chunks and keep live sweep jobs alive; the caller publishes ``republish``.

    * running chunks with a stale heartbeat: back to ``pending`` and re-published while attempts
      remain, else ``failed`` and the sweep job fails (the chunk is re-run, never the sweep);
    * pending chunks of a sweep with nothing running for ``republish_after_s``: re-published
      (their message was lost);
    * a planned sweep job with chunks still pending or running gets a fresh job heartbeat: its
      liveness is judged per chunk here, so :func:`db.jobs.reap` (run after this) leaves it alone;
      a sweep job with no active chunk left is not refreshed, so a lost finaliser is re-run;
    * a cancelling sweep with no running chunk becomes ``cancelled``.
    """
    now = now or utcnow()
    report = ChunkReapReport()
    stale_cutoff = now - timedelta(seconds=stale_after_s)
    last_seen = func.coalesce(SweepChunk.heartbeat_at, SweepChunk.started_at)
    stale = session.execute(
        select(SweepChunk.id, SweepChunk.sweep_id, SweepChunk.index, SweepChunk.attempts, SweepChunk.heartbeat_at)
        .where(SweepChunk.status == ChunkStatus.running, last_seen < stale_cutoff)
    ).all()
    for row in stale:
        guard = and_(SweepChunk.id == row.id, SweepChunk.status == ChunkStatus.running,
                     SweepChunk.attempts == row.attempts, last_seen < stale_cutoff)
        beat = row.heartbeat_at.isoformat() if row.heartbeat_at else "never"
        if row.attempts >= max_attempts:
            error = f"chunk {row.index} lost {row.attempts} times; last heartbeat at {beat}"
            res = session.execute(update(SweepChunk).where(guard)
                                  .values(status=ChunkStatus.failed, finished_at=now, error=error)
                                  .execution_options(synchronize_session=False))
            if res.rowcount == 1:  # type: ignore[attr-defined]
                report.failed.append(row.id)
                fail_sweep(session, row.sweep_id, f"sweep chunk failed: {error}", now)
        else:
            res = session.execute(
                update(SweepChunk).where(guard)
                .values(status=ChunkStatus.pending, queued_at=now, worker=None, heartbeat_at=None,
                        error=f"worker lost (attempt {row.attempts}); last heartbeat at {beat}; re-queued")
                .execution_options(synchronize_session=False))
            if res.rowcount == 1:  # type: ignore[attr-defined]
                report.requeued.append(row.id)
                report.republish.append(row.id)

    sweeps = session.execute(
        select(Sweep.id, Job.id.label("job_id"), Job.status, Job.cancel_requested)
        .join(Job, Job.id == Sweep.job_id)
        .where(Job.kind == JobKind.sweep, Job.status.in_(JOB_ACTIVE), Sweep.chunks_total.is_not(None))
    ).all()
    republish_cutoff = now - timedelta(seconds=republish_after_s)
    for sw in sweeps:
        if sw.status == JobStatus.cancelling or sw.cancel_requested:
            if settle_cancel(session, sw.id, now):
                report.cancelled_jobs.append(sw.job_id)
            continue
        counts = chunk_counts(session, sw.id)
        if not counts.get(ChunkStatus.pending, 0) and not counts.get(ChunkStatus.running, 0):
            continue
        session.execute(update(Job).where(Job.id == sw.job_id, Job.status == JobStatus.running)
                        .values(heartbeat_at=now).execution_options(synchronize_session=False))
        report.kept_alive.append(sw.job_id)
        if counts.get(ChunkStatus.running, 0):
            continue
        lost = session.execute(
            select(SweepChunk.id).where(
                SweepChunk.sweep_id == sw.id, SweepChunk.status == ChunkStatus.pending,
                or_(SweepChunk.queued_at.is_(None), SweepChunk.queued_at < republish_cutoff))
        ).scalars().all()
        if lost:
            session.execute(update(SweepChunk).where(SweepChunk.id.in_(list(lost))).values(queued_at=now)
                            .execution_options(synchronize_session=False))
            report.republish.extend(lost)
    session.flush()
    return report


def mark_queued(session: Session, ids: Sequence[uuid.UUID], now: datetime | None = None) -> None:
    """Stamp ``queued_at`` on chunks about to be published."""
    if ids:
        session.execute(update(SweepChunk).where(SweepChunk.id.in_(list(ids)))
                        .values(queued_at=now or utcnow()).execution_options(synchronize_session=False))

