"""Sweep fan-out: ``molrg.sweep`` plans a sweep job into chunk rows and publishes one
``molrg.sweep_chunk`` per chunk; any worker runs a chunk with :func:`molrg.sweeps.run.run_chunk`.

* Planning is idempotent (chunk rows keyed by (sweep, index)); a redelivered plan re-publishes only
  the chunks still pending.
* A chunk is claimed conditionally (``pending -> running``, attempts+1), heartbeats on its own row
  (and keeps its sweep job alive), and stores its trials + ``done`` + progress in ONE transaction;
  trials are keyed by their grid position, so a re-run chunk never duplicates one.
* The run that completes the last chunk summarises every stored trial (:mod:`workers.sweep_reports`),
  renders the heatmaps and closes the job with ``result.sweep_id``. Earlier chunks store a partial
  report, so results are readable while the sweep runs.
* Cancel: a chunk sees the job's cancel flag at claim or heartbeat, stops, and the chunks not yet
  started are cancelled. Lost chunks are re-queued by :func:`reap_sweeps` (run by ``molrg.reap``).
"""

import logging
import math
import socket
import threading
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db import jobs
from db import sweep_chunks as chunks_store
from db import sweeps as store
from db.enums import JobKind, Queue
from db.models import Sweep, SweepChunk
from db.session import session_scope
from molrg.sweeps.grid import Chunk, SweepGrid, plan_chunks
from molrg.sweeps.run import SweepProgress, TrialResult, run_chunk
from workers import finite, resources
from workers.celery_app import app, app_settings
from workers.pipelines import TRANSIENT_ERRORS
from workers.resources import torch_threads
from workers.settings import HARD_LIMIT_GRACE_S, WorkerSettings
from workers.sweep_reports import finalize, grid_from_spec, refresh_report

logger = logging.getLogger(__name__)

SWEEP_TASK = "molrg.sweep"
CHUNK_TASK = "molrg.sweep_chunk"

CHUNK_RETRY_COUNTDOWN_S = 5
CHUNK_MAX_RETRIES = 5

Publish = Callable[[uuid.UUID], None]


def chunk_fits(settings: WorkerSettings) -> int:
    """Fits per chunk (``MOLRG_SWEEP_CHUNK_FITS``)."""
    return int(settings.sweep_chunk_fits)


def _chunk_n_fits(grid: SweepGrid, chunk: Chunk) -> int:
    return sum(len(grid.methods_for(c.n_components)) for c in chunk.cells) * (chunk.trial_stop - chunk.trial_start)


# --- planning ---------------------------------------------------------------------------------------


def plan_sweep_job(maker: sessionmaker[Session], settings: WorkerSettings, job_id: uuid.UUID,
                   publish: Publish, hostname: str | None = None) -> str:
    """Claim the sweep job, create its chunk rows (idempotently) and publish the pending ones."""
    with session_scope(maker) as session:
        claim = jobs.claim_job(session, job_id, hostname or socket.gethostname())
    if claim is None:
        logger.info("sweep job %s is not queued; delivery ignored", job_id)
        return "skipped"
    if claim.kind != JobKind.sweep:
        return _fail_job(maker, claim, f"JobFailed: job is a {claim.kind} job, delivered to {SWEEP_TASK}")
    limit = min(claim.max_attempts, settings.job_max_attempts) if claim.max_attempts else settings.job_max_attempts
    if claim.attempt > limit:
        return _fail_job(maker, claim, f"JobFailed: gave up after {claim.attempt - 1} attempts")
    with session_scope(maker) as session:
        sweep = store.sweep_for_job(session, job_id)
        if sweep is None:
            jobs.fail_job(session, job_id, claim.attempt, "JobFailed: the sweep row of this job is missing")
            return "failed"
        sweep_id, spec, planned_with = sweep.id, dict(sweep.spec), sweep.max_fits_per_chunk
    try:
        grid = grid_from_spec(spec)
        # A re-planning keeps the first plan's chunks (rows keyed by index), so chunk i always means the
        # same cells whatever the settings of the worker that plans again.
        max_fits = planned_with or chunk_fits(settings)
        chunks = plan_chunks(grid, max_fits, settings.sweep_chunk_bytes) if planned_with is None else []
    except (ValueError, TypeError, KeyError) as exc:
        return _fail_job(maker, claim, f"{type(exc).__name__}: {exc}")
    with session_scope(maker) as session:
        total = store.plan_sweep(session, sweep_id, [(c.to_dict(), _chunk_n_fits(grid, c)) for c in chunks],
                                 max_fits)
        counts = store.chunk_counts(session, sweep_id)
        pending = store.chunk_ids(session, sweep_id, [store.ChunkStatus.pending])
        chunks_store.mark_queued(session, pending)
        jobs.heartbeat(session, job_id, claim.attempt, progress=None,
                       detail={"chunks_done": counts.get(store.ChunkStatus.done, 0), "chunks_total": total,
                               "fits_done": 0, "fits_total": grid.n_fits})
    logger.info("sweep %s planned: %d chunks, %d fits, %d to publish", sweep_id, total, grid.n_fits, len(pending))
    if counts.get(store.ChunkStatus.done, 0) >= total:
        finalize(maker, sweep_id)  # every chunk ran before a crash of the finaliser: finish now
        return "finalized"
    for chunk_id in pending:
        publish(chunk_id)
    return "planned"


def _fail_job(maker: sessionmaker[Session], claim: jobs.Claim, error: str) -> str:
    with session_scope(maker) as session:
        jobs.fail_job(session, claim.job_id, claim.attempt, error)
    return "failed"


# --- one chunk ----------------------------------------------------------------------------------------


class ChunkHeartbeat:
    """Background beats on a chunk row; sets ``cancel`` / ``lost`` for the run to stop at its next step."""

    def __init__(self, maker: sessionmaker[Session], claim: chunks_store.ChunkClaim,
                 interval_s: float) -> None:
        self.maker, self.claim, self.interval_s = maker, claim, interval_s
        self.progress: dict[str, Any] | None = None  # the run's last report, stored with the next beat
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"chunk-heartbeat-{claim.chunk_id}", daemon=True)

    @property
    def should_stop(self) -> bool:
        return self.cancel.is_set() or self.lost.is_set()

    def beat(self) -> None:
        with session_scope(self.maker) as session:
            state = chunks_store.chunk_heartbeat(session, self.claim, progress=self.progress)
        if not state.owned:
            logger.warning("sweep chunk %s attempt %d is no longer ours; stopping", self.claim.chunk_id,
                           self.claim.attempt)
            self.lost.set()
        elif state.cancel:
            self.cancel.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception:  # a failed beat must not kill the chunk; the reaper judges staleness
                logger.exception("heartbeat of sweep chunk %s failed", self.claim.chunk_id)

    def __enter__(self) -> "ChunkHeartbeat":
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 30.0)


def run_sweep_chunk(maker: sessionmaker[Session], settings: WorkerSettings, chunk_id: uuid.UUID,
                    device: Callable[[], torch.device], hostname: str | None = None) -> str:
    """Claim one chunk, run it batched, store its trials, and finish the sweep if it was the last."""
    with session_scope(maker) as session:
        claim = chunks_store.claim_chunk(session, chunk_id, hostname or socket.gethostname(),
                                         settings.job_max_attempts)
    if isinstance(claim, chunks_store.ClaimRefused):
        return _refused(maker, chunk_id, claim.reason, settings.job_max_attempts)
    with session_scope(maker) as session:
        sweep = store.get_sweep(session, claim.sweep_id)
        assert sweep is not None  # the chunk's foreign key guarantees it
        spec = dict(sweep.spec)
    logger.info("sweep %s chunk %d attempt %d started", claim.sweep_id, claim.index, claim.attempt)
    try:
        grid = grid_from_spec(spec)
        chunk = Chunk.from_dict(claim.spec)
        dev = device()
        # A low-rank chunk is many tiny batched factorisations (48 x d QR/SVD): thread hand-off costs far
        # more than it saves (measured: a 48x8 QR takes 3 ms with 2 threads, 7 us with 1). A chunk that
        # trains networks is large matmuls and keeps the worker's threads (MOLRG_TORCH_THREADS).
        threads = settings.sweep_cpu_threads if dev.type == "cpu" and not grid.neural_methods() else 0
        with ChunkHeartbeat(maker, claim, settings.heartbeat_interval_s) as hb, torch_threads(threads):
            def on_progress(p: SweepProgress | None) -> bool:
                if p is not None:
                    hb.progress = chunk_progress(p)
                return hb.should_stop

            trials = run_chunk(grid, chunk, device=dev, callback=on_progress)
    except SoftTimeLimitExceeded:
        return _chunk_failed(maker, claim, f"TimeLimitExceeded: chunk {claim.index} ran past its time limit")
    except TRANSIENT_ERRORS:
        logger.exception("sweep chunk %s: transient infrastructure error; giving it back", chunk_id)
        with session_scope(maker) as session:
            chunks_store.end_chunk(session, claim, store.ChunkStatus.pending)
        raise
    except Exception as exc:
        logger.exception("sweep chunk %s failed", chunk_id)
        return _chunk_failed(maker, claim, finite.user_message(exc))  # no SQL, parameters or traceback
    if hb.lost.is_set():
        return "lost"
    if hb.cancel.is_set():
        with session_scope(maker) as session:
            chunks_store.end_chunk(session, claim, store.ChunkStatus.cancelled, "cancelled on request")
            store.settle_cancel(session, claim.sweep_id)
        return "cancelled"
    with session_scope(maker) as session:
        done = chunks_store.complete_chunk(session, claim, [trial_row(t) for t in trials], progress=hb.progress)
    if not done.owned:
        logger.warning("sweep chunk %s attempt %d finished after losing its claim; nothing stored",
                       chunk_id, claim.attempt)
        return "lost"
    logger.info("sweep %s chunk %d done (%d/%d chunks, %d fits)", claim.sweep_id, claim.index,
                done.chunks_done, done.chunks_total, done.fits_done)
    if done.last:
        finalize(maker, claim.sweep_id)
        return "finalized"
    try:
        refresh_report(maker, claim.sweep_id)
    except Exception:  # a partial report is a convenience; the final one is written by the last chunk
        logger.exception("partial report of sweep %s failed", claim.sweep_id)
    return "done"


def _refused(maker: sessionmaker[Session], chunk_id: uuid.UUID, reason: str, max_attempts: int) -> str:
    with session_scope(maker) as session:
        chunk = session.get(SweepChunk, chunk_id)
        if chunk is None:
            return "missing"
        sweep_id = chunk.sweep_id
        if reason == "job_inactive":
            # Cancelling -> cancel what has not started; terminal (failed/cancelled) -> the same. A job
            # merely queued again (to be re-planned after the reaper) keeps its pending chunks.
            job_id = session.execute(select(Sweep.job_id).where(Sweep.id == sweep_id)).scalar_one()
            state = store.job_status(session, job_id)
            if not store.settle_cancel(session, sweep_id) and state is not None and state[0].terminal:
                store.cancel_pending_chunks(session, sweep_id)
        elif reason == "exhausted":
            store.fail_sweep(session, sweep_id, f"sweep chunk {chunk.index} failed {max_attempts} attempts")
    logger.info("sweep chunk %s not run: %s", chunk_id, reason)
    return reason


def _chunk_failed(maker: sessionmaker[Session], claim: chunks_store.ChunkClaim, error: str) -> str:
    with session_scope(maker) as session:
        if chunks_store.end_chunk(session, claim, store.ChunkStatus.failed, error):
            store.fail_sweep(session, claim.sweep_id, f"sweep chunk {claim.index} failed: {error}")
    return "failed"


def chunk_progress(p: SweepProgress) -> dict[str, Any]:
    """What a running chunk reports: fits done and, while its networks train, the step."""
    out: dict[str, Any] = {"fits_done": p.fits_done, "fits_total": p.fits_total, "method": p.method}
    if p.step is not None:
        out |= {"step": p.step, "total_steps": p.total_steps, "networks": p.batch_size,
                "loss": p.loss if p.loss is not None and math.isfinite(p.loss) else None}
    return out


def trial_row(t: TrialResult) -> dict[str, Any]:
    """The stored columns of one trial (a NaN error counts as a failed trial with error None)."""
    error = float(t.error) if math.isfinite(t.error) else float("inf")
    return {"method": t.method, "ambient_dim": t.ambient_dim, "n_components": t.n_components, "d": t.d,
            "samples": t.samples, "trial": t.trial, "seed": int(t.seed), "error": error,
            "mean_error": float(t.mean_error) if math.isfinite(t.mean_error) else None,
            "success": bool(t.success), "fit_seconds": float(t.fit_seconds),
            "memorised_fraction": t.memorised_fraction, "generalisation_score": t.generalisation_score,
            "on_support_fraction": t.on_support_fraction, "scores_by_step": t.scores_by_step}


# --- the reaper's share ------------------------------------------------------------------------------


def reap_sweeps(maker: sessionmaker[Session], settings: WorkerSettings,
                publish: Publish) -> chunks_store.ChunkReapReport:
    """Re-queue lost chunks, keep live sweep jobs alive, settle cancels; publish after the commit.

    Run it before :func:`db.jobs.reap` in the same reaper pass.
    """
    try:
        with session_scope(maker) as session:
            report = chunks_store.reap_chunks(session, settings.stale_after_s, settings.republish_after_s,
                                              settings.job_max_attempts)
    except Exception:  # never block the job reaper that runs next; the next pass retries
        logger.exception("sweep reaper pass failed")
        return chunks_store.ChunkReapReport()
    for chunk_id in report.republish:
        try:
            publish(chunk_id)
        except Exception:  # the next pass republishes it
            logger.exception("could not republish sweep chunk %s", chunk_id)
    if report.requeued or report.failed or report.cancelled_jobs:
        logger.info("sweep reaper: requeued=%d failed=%d cancelled=%d republished=%d", len(report.requeued),
                    len(report.failed), len(report.cancelled_jobs), len(report.republish))
    return report


# --- Celery tasks ---------------------------------------------------------------------------------------


def publisher(task: Task) -> Publish:
    """Publish ``molrg.sweep_chunk`` for a chunk id on the gpu queue."""

    def publish(chunk_id: uuid.UUID) -> None:
        task.app.send_task(CHUNK_TASK, kwargs={"chunk_id": str(chunk_id)}, queue=Queue.gpu.value)

    return publish


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@app.task(name=SWEEP_TASK, bind=True)
def sweep(self: Task, job_id: str) -> str:
    """Plan a sweep job into chunks and publish them."""
    resources.set_settings(app_settings(self.app))
    jid = _uuid(job_id)
    if jid is None:
        logger.error("%s: ignoring message with invalid job id %r", SWEEP_TASK, job_id)
        return "invalid"
    return plan_sweep_job(resources.get_sessionmaker(), resources.get_settings(), jid, publisher(self),
                          self.request.hostname)


# A chunk runs at most as long as a sweep job may (soft limit: the chunk fails cleanly).
_CHUNK_LIMIT_S = app_settings(app).time_limit_s(JobKind.sweep)


@app.task(name=CHUNK_TASK, bind=True, soft_time_limit=_CHUNK_LIMIT_S, time_limit=_CHUNK_LIMIT_S + HARD_LIMIT_GRACE_S)
def sweep_chunk(self: Task, chunk_id: str) -> str:
    """Run one chunk of a sweep."""
    resources.set_settings(app_settings(self.app))
    cid = _uuid(chunk_id)
    if cid is None:
        logger.error("%s: ignoring message with invalid chunk id %r", CHUNK_TASK, chunk_id)
        return "invalid"
    try:
        return run_sweep_chunk(resources.get_sessionmaker(), resources.get_settings(), cid,
                               resources.get_device, self.request.hostname)
    except TRANSIENT_ERRORS as exc:
        raise self.retry(exc=exc, countdown=CHUNK_RETRY_COUNTDOWN_S, max_retries=CHUNK_MAX_RETRIES) from exc
