"""Sweep persistence, the sweep row as a whole: creating and reading sweeps, planning its chunk rows,
cancelling, failing and finishing the sweep job, and its trial rows, reports and heatmaps.

A sweep job fans out into chunk rows (planned idempotently here, keyed by (sweep, index)); one chunk's
run (claim, heartbeat, complete) and the reaper's share live in :mod:`db.sweep_chunks`, which builds on
this module. The chunk status enum and the dialect ``INSERT`` helper are here because both modules use
them. Like :mod:`db.jobs`, nothing here commits: the caller owns the transaction.
"""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.base import utcnow
from db.enums import JobStatus
from db.models import Job, Sweep, SweepChunk, SweepFigure, SweepHeatmap, SweepTrial

JOB_ACTIVE = (JobStatus.running, JobStatus.cancelling)


class ChunkStatus(StrEnum):
    """Chunk lifecycle: pending -> running -> done | failed | cancelled (running -> pending when lost)."""

    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"




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


# --- cancel and failure ----------------------------------------------------------------------------


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


def store_figure(session: Session, sweep_id: uuid.UUID, kind: str, n_components: int, ambient_dim: int,
                 png: bytes, width: int, height: int) -> None:
    """Insert or replace one sweep figure PNG (e.g. ``curves``)."""
    existing = session.get(SweepFigure, (sweep_id, kind, n_components, ambient_dim))
    if existing is None:
        session.add(SweepFigure(sweep_id=sweep_id, kind=kind, n_components=n_components, ambient_dim=ambient_dim,
                                png=png, width=width, height=height))
    else:
        existing.png, existing.width, existing.height = png, width, height
    session.flush()


def figures(session: Session, sweep_id: uuid.UUID) -> list[tuple[str, int, int, int, int]]:
    """(kind, n_components, ambient_dim, width, height) of the stored sweep figures."""
    rows = session.execute(
        select(SweepFigure.kind, SweepFigure.n_components, SweepFigure.ambient_dim, SweepFigure.width,
               SweepFigure.height).where(SweepFigure.sweep_id == sweep_id)
        .order_by(SweepFigure.kind, SweepFigure.n_components, SweepFigure.ambient_dim)
    ).all()
    return [(r.kind, int(r.n_components), int(r.ambient_dim), int(r.width), int(r.height)) for r in rows]


def figure_png(session: Session, sweep_id: uuid.UUID, kind: str, n_components: int,
               ambient_dim: int) -> SweepFigure | None:
    """One stored sweep figure (PNG bytes loaded), or None."""
    return session.get(SweepFigure, (sweep_id, kind, n_components, ambient_dim))


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


def _insert(session: Session, model: Any) -> Any:
    """A dialect ``INSERT`` that supports ``on_conflict_do_nothing`` (PostgreSQL and SQLite)."""
    dialect = session.get_bind().dialect.name
    return pg_insert(model) if dialect == "postgresql" else sqlite_insert(model)
