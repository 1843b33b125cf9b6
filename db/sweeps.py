"""Sweep persistence: the sweep row, its chunk rows (claim, heartbeat, complete, reap) and trial rows.

A sweep job fans out into chunk rows; each chunk is claimed by one worker with a conditional
``pending -> running`` update (attempts+1), heartbeats while it runs, and is completed in ONE
transaction that inserts its trials (``ON CONFLICT DO NOTHING`` on the trial's grid key), marks the
chunk ``done`` and recounts the sweep's progress. A chunk whose worker died goes back to
``pending`` (the chunk, never the sweep). Like :mod:`db.jobs`, nothing here commits: the caller owns
the transaction.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.base import utcnow
from db.enums import JobKind, JobStatus
from db.models import Job, Sweep, SweepChunk, SweepHeatmap, SweepTrial

TRIAL_KEY = ("sweep_id", "method", "ambient_dim", "n_components", "d", "samples", "trial")
TRIAL_COLUMNS = (*TRIAL_KEY, "chunk_index", "seed", "error", "mean_error", "success", "fit_seconds")
JOB_ACTIVE = (JobStatus.running, JobStatus.cancelling)


class ChunkStatus(StrEnum):
    """Chunk lifecycle: pending -> running -> done | failed | cancelled (running -> pending when lost)."""

    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


CHUNK_ACTIVE = (ChunkStatus.pending, ChunkStatus.running)


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


# --- the sweep row ---------------------------------------------------------------------------------


def create_sweep(session: Session, *, owner: str, job_id: uuid.UUID, spec: dict[str, Any],
                 fits_total: int, sweep_id: uuid.UUID | None = None) -> Sweep:
    """Add the sweep row of a new sweep job (the service does this in the job's transaction)."""
    sweep = Sweep(id=sweep_id or uuid.uuid4(), owner=owner, job_id=job_id, spec=spec, fits_total=fits_total, fits_done=0,
                  chunks_done=0, report_fits=0, report_final=False)
    session.add(sweep)
    session.flush()
    return sweep


def get_sweep(session: Session, sweep_id: uuid.UUID, owner: str | None = None) -> Sweep | None:
    """The sweep (scoped to ``owner`` when given), or None."""
    stmt = select(Sweep).where(Sweep.id == sweep_id)
    if owner is not None:
        stmt = stmt.where(Sweep.owner == owner)
    return session.execute(stmt).scalar_one_or_none()


def sweep_for_job(session: Session, job_id: uuid.UUID) -> Sweep | None:
    """The sweep of a sweep job, or None."""
    return session.execute(select(Sweep).where(Sweep.job_id == job_id)).scalar_one_or_none()


def job_status(session: Session, job_id: uuid.UUID) -> tuple[JobStatus, bool] | None:
    """(status, cancel_requested) of a job, or None."""
    row = session.execute(select(Job.status, Job.cancel_requested).where(Job.id == job_id)).one_or_none()
    return None if row is None else (JobStatus(row.status), bool(row.cancel_requested))


# --- planning ---------------------------------------------------------------------------------------


def plan_sweep(session: Session, sweep_id: uuid.UUID, chunks: Sequence[tuple[dict[str, Any], int]],
               max_fits_per_chunk: int, now: datetime | None = None) -> int:
    """Create the chunk rows ``(spec, n_fits)`` idempotently and fix ``chunks_total``; return it.

    A second planning (a redelivered sweep task) inserts nothing: rows are keyed by (sweep, index)
    and ``chunks_total`` is only set while it is NULL.
    """
    now = now or utcnow()
    session.execute(
        update(Sweep).where(Sweep.id == sweep_id, Sweep.chunks_total.is_(None))
        .values(chunks_total=len(chunks), max_fits_per_chunk=max_fits_per_chunk)
        .execution_options(synchronize_session=False)
    )
    rows = [{"id": uuid.uuid4(), "sweep_id": sweep_id, "index": i, "spec": spec, "n_fits": n_fits,
             "status": ChunkStatus.pending.value, "attempts": 0, "queued_at": now}
            for i, (spec, n_fits) in enumerate(chunks)]
    if rows:
        session.execute(_insert(session, SweepChunk).values(rows)
                        .on_conflict_do_nothing(index_elements=["sweep_id", "index"]))
    total = session.execute(select(Sweep.chunks_total).where(Sweep.id == sweep_id)).scalar_one()
    return int(total or 0)


def chunk_ids(session: Session, sweep_id: uuid.UUID, statuses: Iterable[str]) -> list[uuid.UUID]:
    """Ids of the sweep's chunks in ``statuses``, by index."""
    return list(session.execute(
        select(SweepChunk.id).where(SweepChunk.sweep_id == sweep_id, SweepChunk.status.in_(list(statuses)))
        .order_by(SweepChunk.index)
    ).scalars())


def chunks(session: Session, sweep_id: uuid.UUID) -> list[SweepChunk]:
    """The sweep's chunk rows, by index."""
    return list(session.execute(select(SweepChunk).where(SweepChunk.sweep_id == sweep_id)
                                .order_by(SweepChunk.index)).scalars())


def chunk_counts(session: Session, sweep_id: uuid.UUID) -> dict[str, int]:
    """Number of chunks per status."""
    rows = session.execute(
        select(SweepChunk.status, func.count()).where(SweepChunk.sweep_id == sweep_id).group_by(SweepChunk.status)
    ).all()
    return {str(status): int(n) for status, n in rows}


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
                started_at=now, heartbeat_at=now, error=None)
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


def chunk_heartbeat(session: Session, claim: ChunkClaim, now: datetime | None = None) -> ChunkBeat:
    """Stamp the chunk (and its sweep job, whose liveness is its chunks'); report ownership and cancel."""
    now = now or utcnow()
    res = session.execute(update(SweepChunk).where(_chunk_owned(claim)).values(heartbeat_at=now)
                          .execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return ChunkBeat(owned=False, cancel=False)
    session.execute(update(Job).where(Job.id == claim.job_id, Job.status == JobStatus.running)
                    .values(heartbeat_at=now).execution_options(synchronize_session=False))
    state = job_status(session, claim.job_id)
    cancel = state is None or state[0] != JobStatus.running or state[1]
    return ChunkBeat(owned=True, cancel=cancel)


def complete_chunk(session: Session, claim: ChunkClaim, trials: Sequence[dict[str, Any]],
                   now: datetime | None = None) -> Completion:
    """Store a chunk's trials, mark it done and recount progress, all in the caller's transaction.

    The ownership guard is the first statement, so a run whose chunk was re-queued (it looked dead)
    writes nothing; trials conflict on their grid key and are never duplicated. The sweep row is
    locked before the counts are read, so concurrent completions count each other.
    """
    now = now or utcnow()
    res = session.execute(
        update(SweepChunk).where(_chunk_owned(claim))
        .values(status=ChunkStatus.done, finished_at=now, heartbeat_at=now)
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


def cancel_pending_chunks(session: Session, sweep_id: uuid.UUID, now: datetime | None = None) -> int:
    """Cancel every chunk not started yet; return how many."""
    res = session.execute(
        update(SweepChunk).where(SweepChunk.sweep_id == sweep_id, SweepChunk.status == ChunkStatus.pending)
        .values(status=ChunkStatus.cancelled, finished_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


def settle_cancel(session: Session, sweep_id: uuid.UUID, now: datetime | None = None) -> bool:
    """If the sweep job is cancelling: cancel pending chunks; once none runs, ``cancelling -> cancelled``."""
    now = now or utcnow()
    sweep = session.execute(select(Sweep.job_id).where(Sweep.id == sweep_id)).one_or_none()
    if sweep is None:
        return False
    state = job_status(session, sweep.job_id)
    if state is None or not (state[0] == JobStatus.cancelling or (state[0] == JobStatus.running and state[1])):
        return False
    cancel_pending_chunks(session, sweep_id, now)
    running = session.execute(select(func.count()).select_from(SweepChunk).where(
        SweepChunk.sweep_id == sweep_id, SweepChunk.status == ChunkStatus.running)).scalar_one()
    if running:
        return False
    res = session.execute(
        update(Job).where(Job.id == sweep.job_id, Job.status.in_(JOB_ACTIVE))
        .values(status=JobStatus.cancelled, cancel_requested=True, finished_at=now,
                result={"sweep_id": str(sweep_id)})
        .execution_options(synchronize_session=False)
    )
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(finished_at=now)
                    .execution_options(synchronize_session=False))
    return res.rowcount == 1  # type: ignore[attr-defined]


def fail_sweep(session: Session, sweep_id: uuid.UUID, error: str, now: datetime | None = None) -> bool:
    """Fail the sweep job (cancelling the chunks not started) with a readable error."""
    now = now or utcnow()
    job_id = session.execute(select(Sweep.job_id).where(Sweep.id == sweep_id)).scalar_one()
    cancel_pending_chunks(session, sweep_id, now)
    res = session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_(JOB_ACTIVE))
        .values(status=JobStatus.failed, error=error[:10_000], finished_at=now,
                result={"sweep_id": str(sweep_id)})
        .execution_options(synchronize_session=False)
    )
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(finished_at=now)
                    .execution_options(synchronize_session=False))
    return res.rowcount == 1  # type: ignore[attr-defined]


# --- reports and heatmaps -------------------------------------------------------------------------------


def trial_rows(session: Session, sweep_id: uuid.UUID) -> list[SweepTrial]:
    """All stored trials of a sweep in grid order."""
    return list(session.execute(
        select(SweepTrial).where(SweepTrial.sweep_id == sweep_id).order_by(
            SweepTrial.method, SweepTrial.ambient_dim, SweepTrial.n_components, SweepTrial.d,
            SweepTrial.samples, SweepTrial.trial)
    ).scalars())


def store_report(session: Session, sweep_id: uuid.UUID, report: dict[str, Any], fits: int,
                 final: bool = False) -> bool:
    """Replace the stored report unless a newer one (covering more fits, or the final one) is there."""
    conds = [Sweep.id == sweep_id, Sweep.report_final.is_(False)]
    if not final:
        conds.append(Sweep.report_fits <= fits)
    res = session.execute(update(Sweep).where(*conds)
                          .values(report=report, report_fits=fits, report_final=final)
                          .execution_options(synchronize_session=False))
    return res.rowcount == 1  # type: ignore[attr-defined]


def store_heatmap(session: Session, sweep_id: uuid.UUID, method: str, n_components: int, ambient_dim: int,
                  png: bytes, width: int, height: int) -> None:
    """Insert or replace one heatmap PNG."""
    existing = session.get(SweepHeatmap, (sweep_id, method, n_components, ambient_dim))
    if existing is None:
        session.add(SweepHeatmap(sweep_id=sweep_id, method=method, n_components=n_components,
                                 ambient_dim=ambient_dim, png=png, width=width, height=height))
    else:
        existing.png, existing.width, existing.height = png, width, height
    session.flush()


def heatmaps(session: Session, sweep_id: uuid.UUID) -> list[tuple[str, int, int, int, int]]:
    """(method, n_components, ambient_dim, width, height) of the stored heatmaps."""
    rows = session.execute(
        select(SweepHeatmap.method, SweepHeatmap.n_components, SweepHeatmap.ambient_dim, SweepHeatmap.width,
               SweepHeatmap.height).where(SweepHeatmap.sweep_id == sweep_id)
        .order_by(SweepHeatmap.method, SweepHeatmap.n_components, SweepHeatmap.ambient_dim)
    ).all()
    return [(r.method, int(r.n_components), int(r.ambient_dim), int(r.width), int(r.height)) for r in rows]


def heatmap_png(session: Session, sweep_id: uuid.UUID, method: str, n_components: int,
                ambient_dim: int) -> SweepHeatmap | None:
    """One stored heatmap (PNG bytes loaded), or None."""
    return session.get(SweepHeatmap, (sweep_id, method, n_components, ambient_dim))


def finish_sweep(session: Session, sweep_id: uuid.UUID, result: dict[str, Any],
                 now: datetime | None = None) -> JobStatus | None:
    """Close the sweep job after its last chunk: ``running -> succeeded`` (``cancelling -> cancelled``)."""
    now = now or utcnow()
    job_id = session.execute(select(Sweep.job_id).where(Sweep.id == sweep_id)).scalar_one()
    state = job_status(session, job_id)
    if state is None or state[0] not in JOB_ACTIVE:
        return None
    status = JobStatus.cancelled if state[0] == JobStatus.cancelling else JobStatus.succeeded
    res = session.execute(
        update(Job).where(Job.id == job_id, Job.status == state[0])
        .values(status=status, result=result, progress=1.0 if status == JobStatus.succeeded else Job.progress,
                finished_at=now, heartbeat_at=now, error=None)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(finished_at=now)
                    .execution_options(synchronize_session=False))
    return status


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


def _insert(session: Session, model: Any) -> Any:
    """A dialect ``INSERT`` that supports ``on_conflict_do_nothing`` (PostgreSQL and SQLite)."""
    dialect = session.get_bind().dialect.name
    return pg_insert(model) if dialect == "postgresql" else sqlite_insert(model)
