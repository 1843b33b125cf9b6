"""The sweep pipeline called directly (no Celery): plan, chunks, idempotency, reaper, cancel."""

import time
import uuid
from datetime import timedelta
from typing import Any

import torch
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db import sweep_chunks as chunks_store
from db.base import utcnow
from db.enums import JobStatus
from db.models import Job, Sweep, SweepChunk, SweepHeatmap, SweepTrial
from db.session import session_scope
from tests.sweeps.helpers import TINY, add_sweep
from workers import plots
from workers import sweeps as ws
from workers.settings import WorkerSettings

SETTINGS = WorkerSettings(heartbeat_interval_s=0.1, stale_after_s=5, republish_after_s=5, job_max_attempts=3,
                          sweep_chunk_fits=6)


def cpu() -> torch.device:
    return torch.device("cpu")


class Outbox:
    """Collects published chunk ids instead of sending them to a broker."""

    def __init__(self) -> None:
        self.ids: list[uuid.UUID] = []

    def __call__(self, chunk_id: uuid.UUID) -> None:
        self.ids.append(chunk_id)

    def drain(self) -> list[uuid.UUID]:
        out, self.ids = self.ids, []
        return out


def job(maker: sessionmaker[Session], job_id: uuid.UUID) -> Job:
    with maker() as s:
        j = s.get_one(Job, job_id)
        s.expunge(j)
        return j


def trial_counts(maker: sessionmaker[Session], sweep_id: uuid.UUID) -> list[int]:
    with maker() as s:
        rows = s.execute(select(func.count()).select_from(SweepTrial).where(SweepTrial.sweep_id == sweep_id)
                         .group_by(SweepTrial.method, SweepTrial.ambient_dim, SweepTrial.n_components,
                                   SweepTrial.d, SweepTrial.samples)).scalars().all()
    return sorted(rows)


def test_sweep_runs_in_chunks_and_finishes(maker: sessionmaker[Session]) -> None:
    job_id, sweep_id = add_sweep(maker)
    out = Outbox()
    assert ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1") == "planned"
    chunk_ids = out.drain()
    assert len(chunk_ids) == 3  # 6 cells x 3 trials = 18 fits, 6 per chunk (2 cells each)
    # A redelivered plan message is ignored (the job is running): no new rows, no new messages.
    assert ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1") == "skipped" and not out.drain()

    outcomes = [ws.run_sweep_chunk(maker, SETTINGS, cid, cpu, "w1") for cid in chunk_ids]
    assert outcomes == ["done", "done", "finalized"]
    # Redelivered chunk messages do nothing.
    assert ws.run_sweep_chunk(maker, SETTINGS, chunk_ids[0], cpu, "w1") == "not_pending"

    j = job(maker, job_id)
    assert j.status == JobStatus.succeeded and j.progress == 1.0
    assert j.result is not None and j.result["sweep_id"] == str(sweep_id) and j.result["n_fits"] == 18
    assert trial_counts(maker, sweep_id) == [3] * 6
    with maker() as s:
        sweep = s.get_one(Sweep, sweep_id)
        assert (sweep.chunks_done, sweep.chunks_total, sweep.fits_done) == (3, 3, 18)
        assert sweep.report_final and sweep.report is not None
        cells = sweep.report["cells"]
        assert len(cells) == 6 and all(c["trials"] == 3 for c in cells)
        (tr,) = sweep.report["transitions"]
        assert [r["n_star"] for r in tr["rows"]] == [2, 3]  # PCA on noiseless data: N* = d
        assert abs(tr["linear_fit"]["slope"] - 1.0) < 1e-9
        hm = s.execute(select(SweepHeatmap)).scalars().one()
        assert plots.png_size(hm.png) == (hm.width, hm.height) == (800, 600)


def test_rerun_chunk_never_duplicates_trials(maker: sessionmaker[Session]) -> None:
    job_id, sweep_id = add_sweep(maker)
    out = Outbox()
    ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1")
    first, *rest = out.drain()
    assert ws.run_sweep_chunk(maker, SETTINGS, first, cpu, "w1") == "done"
    # Pretend the worker died after committing (or a duplicate message raced): the chunk goes back to
    # pending and runs again; the trial key makes the second insert a no-op.
    with session_scope(maker) as s:
        s.execute(update(SweepChunk).where(SweepChunk.id == first).values(status="pending"))
    assert ws.run_sweep_chunk(maker, SETTINGS, first, cpu, "w2") == "done"
    for cid in rest:
        ws.run_sweep_chunk(maker, SETTINGS, cid, cpu, "w1")
    assert job(maker, job_id).status == JobStatus.succeeded
    assert trial_counts(maker, sweep_id) == [3] * 6


def test_partial_report_before_the_end(maker: sessionmaker[Session]) -> None:
    job_id, sweep_id = add_sweep(maker)
    out = Outbox()
    ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1")
    ws.run_sweep_chunk(maker, SETTINGS, out.drain()[0], cpu, "w1")
    with maker() as s:
        sweep = s.get_one(Sweep, sweep_id)
        assert not sweep.report_final and sweep.report is not None and sweep.report_fits == 6
        assert len(sweep.report["cells"]) == 2
    j = job(maker, job_id)
    assert j.status == JobStatus.running and j.progress_detail is not None
    assert j.progress_detail["chunks_done"] == 1 and j.progress_detail["chunks_total"] == 3
    assert abs(j.progress - 1 / 3) < 1e-9


def test_reaper_requeues_a_stale_chunk_not_the_sweep(maker: sessionmaker[Session]) -> None:
    job_id, sweep_id = add_sweep(maker)
    out = Outbox()
    ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1")
    ids = out.drain()
    ws.run_sweep_chunk(maker, SETTINGS, ids[0], cpu, "w1")
    with session_scope(maker) as s:  # chunk 1 was claimed by a worker that then died
        claim = chunks_store.claim_chunk(s, ids[1], "dead", max_attempts=3)
        assert isinstance(claim, chunks_store.ChunkClaim)
        old = utcnow() - timedelta(seconds=60)
        s.execute(update(SweepChunk).where(SweepChunk.id == ids[1]).values(heartbeat_at=old))
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=old))
    report = ws.reap_sweeps(maker, SETTINGS, out)
    assert report.requeued == [ids[1]] and out.drain() == [ids[1]]
    assert job_id in report.kept_alive  # the job got a fresh heartbeat, so the job reaper leaves it
    j = job(maker, job_id)
    assert j.status == JobStatus.running and j.heartbeat_at is not None
    assert ws.run_sweep_chunk(maker, SETTINGS, ids[1], cpu, "w2") == "done"
    # The dead run's late completion is refused (attempt 1 no longer owns the chunk).
    with session_scope(maker) as s:
        assert not chunks_store.complete_chunk(s, claim, []).owned
    assert ws.run_sweep_chunk(maker, SETTINGS, ids[2], cpu, "w2") == "finalized"
    with maker() as s:
        chunk = s.get_one(SweepChunk, ids[1])
        assert chunk.attempts == 2 and chunk.status == "done"
    assert trial_counts(maker, sweep_id) == [3] * 6 and job(maker, job_id).status == JobStatus.succeeded


def test_reaper_fails_the_sweep_after_max_attempts(maker: sessionmaker[Session]) -> None:
    job_id, _ = add_sweep(maker)
    out = Outbox()
    ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1")
    cid = out.drain()[0]
    with session_scope(maker) as s:
        s.execute(update(SweepChunk).where(SweepChunk.id == cid)
                  .values(status="running", attempts=3, heartbeat_at=utcnow() - timedelta(seconds=60)))
    report = ws.reap_sweeps(maker, SETTINGS, out)
    assert report.failed == [cid]
    j = job(maker, job_id)
    assert j.status == JobStatus.failed and j.error is not None and "lost 3 times" in j.error


def test_cancel_stops_chunks_not_started(maker: sessionmaker[Session]) -> None:
    job_id, sweep_id = add_sweep(maker)
    out = Outbox()
    ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1")
    ids = out.drain()
    ws.run_sweep_chunk(maker, SETTINGS, ids[0], cpu, "w1")
    with session_scope(maker) as s:  # what the API does for a running job
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.cancelling, cancel_requested=True))
    assert ws.run_sweep_chunk(maker, SETTINGS, ids[1], cpu, "w1") == "job_inactive"
    assert job(maker, job_id).status == JobStatus.cancelled
    with maker() as s:
        statuses = s.execute(select(SweepChunk.status).where(SweepChunk.sweep_id == sweep_id)
                             .order_by(SweepChunk.index)).scalars().all()
    assert statuses == ["done", "cancelled", "cancelled"]
    assert ws.run_sweep_chunk(maker, SETTINGS, ids[2], cpu, "w1") == "not_pending"


def test_invalid_spec_fails_the_job(maker: sessionmaker[Session]) -> None:
    job_id, _ = add_sweep(maker, {**TINY, "dims": [8]})
    assert ws.plan_sweep_job(maker, SETTINGS, job_id, Outbox(), "w1") == "failed"
    j = job(maker, job_id)
    assert j.status == JobStatus.failed and j.error is not None and "dims" in j.error


def test_cancel_stops_a_running_chunk_at_its_next_step(maker: sessionmaker[Session], monkeypatch: Any) -> None:
    job_id, sweep_id = add_sweep(maker)
    out = Outbox()
    ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1")
    ids = out.drain()

    def cancelled_mid_run(grid: Any, chunk: Any, *, device: Any, callback: Any) -> list[Any]:
        with session_scope(maker) as s:  # the API's cancel of a running job
            s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.cancelling, cancel_requested=True))
        time.sleep(0.5)  # a few heartbeats
        assert callback(None) is True  # the next step is told to stop
        return []

    monkeypatch.setattr(ws, "run_chunk", cancelled_mid_run)
    assert ws.run_sweep_chunk(maker, SETTINGS, ids[0], cpu, "w1") == "cancelled"
    assert job(maker, job_id).status == JobStatus.cancelled
    with maker() as s:
        statuses = s.execute(select(SweepChunk.status).where(SweepChunk.sweep_id == sweep_id)
                             .order_by(SweepChunk.index)).scalars().all()
    assert statuses == ["cancelled"] * 3 and trial_counts(maker, sweep_id) == []


def test_a_requeued_sweep_job_keeps_its_pending_chunks(maker: sessionmaker[Session]) -> None:
    job_id, sweep_id = add_sweep(maker)
    out = Outbox()
    ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1")
    ids = out.drain()
    ws.run_sweep_chunk(maker, SETTINGS, ids[0], cpu, "w1")
    with session_scope(maker) as s:  # the job reaper re-queued the sweep job
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.queued))
    assert ws.run_sweep_chunk(maker, SETTINGS, ids[1], cpu, "w1") == "job_inactive"
    assert ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w2") == "planned"
    assert out.drain() == ids[1:]  # only the chunks still pending are published again
    assert [ws.run_sweep_chunk(maker, SETTINGS, c, cpu, "w2") for c in ids[1:]] == ["done", "finalized"]
    assert job(maker, job_id).status == JobStatus.succeeded and trial_counts(maker, sweep_id) == [3] * 6


def test_reaper_republishes_pending_chunks_whose_message_was_lost(maker: sessionmaker[Session]) -> None:
    job_id, _ = add_sweep(maker)
    out = Outbox()
    ws.plan_sweep_job(maker, SETTINGS, job_id, out, "w1")
    ids = out.drain()
    assert not ws.reap_sweeps(maker, SETTINGS, out).republish  # just published: not lost yet
    with session_scope(maker) as s:
        s.execute(update(SweepChunk).where(SweepChunk.id.in_(ids)).values(queued_at=utcnow() - timedelta(seconds=60)))
    report = ws.reap_sweeps(maker, SETTINGS, out)
    assert sorted(report.republish) == sorted(ids) and sorted(out.drain()) == sorted(ids)
    assert not ws.reap_sweeps(maker, SETTINGS, out).republish  # queued_at was reset
