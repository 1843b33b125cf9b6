"""Job state transitions in db.jobs against SQLite and PostgreSQL (schema from migrations)."""

import threading
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from db import jobs
from db.base import utcnow
from db.enums import JobKind, JobStatus
from db.session import session_scope
from tests.db.dbfixtures import add_job, get_job

PARAMS = {"dataset_id": "x", "n_components": 1, "dims": [2], "method": "pca", "options": {}, "seed": 0}


def _claim(maker: sessionmaker[Session], job_id, worker: str = "w1") -> jobs.Claim | None:  # type: ignore[no-untyped-def]
    with session_scope(maker) as s:
        return jobs.claim_job(s, job_id, worker)


def test_claim_once(maker: sessionmaker[Session]) -> None:
    job_id = add_job(maker, JobKind.fit, PARAMS)
    claim = _claim(maker, job_id)
    assert claim is not None and claim.attempt == 1 and claim.kind == "fit" and claim.params == PARAMS
    assert _claim(maker, job_id, "w2") is None
    job = get_job(maker, job_id)
    assert job.status == JobStatus.running and job.attempts == 1 and job.worker == "w1"
    assert job.started_at is not None and job.heartbeat_at is not None


def test_concurrent_claims_one_wins(maker: sessionmaker[Session]) -> None:
    job_id = add_job(maker, JobKind.fit, PARAMS)
    barrier = threading.Barrier(4)
    wins: list[jobs.Claim | None] = []

    def worker(i: int) -> None:
        barrier.wait()
        wins.append(_claim(maker, job_id, f"w{i}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(c is not None for c in wins) == 1
    assert get_job(maker, job_id).attempts == 1


def test_terminal_and_cancelled_jobs_are_not_claimed(maker: sessionmaker[Session]) -> None:
    for status in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.cancelling):
        assert _claim(maker, add_job(maker, JobKind.fit, PARAMS, status=status)) is None


def test_heartbeat_progress_and_cancel(maker: sessionmaker[Session]) -> None:
    job_id = add_job(maker, JobKind.fit, PARAMS)
    claim = _claim(maker, job_id)
    assert claim is not None
    with session_scope(maker) as s:
        state = jobs.heartbeat(s, job_id, claim.attempt, 0.25, {"step": 1})
    assert state.owned and not state.cancel_requested
    job = get_job(maker, job_id)
    assert job.progress == 0.25 and job.progress_detail == {"step": 1}
    # What the service does on cancel of a running job.
    with session_scope(maker) as s:
        s.get_one(jobs.Job, job_id).status = JobStatus.cancelling
        s.get_one(jobs.Job, job_id).cancel_requested = True
    with session_scope(maker) as s:
        state = jobs.heartbeat(s, job_id, claim.attempt)
    assert state.owned and state.cancel_requested
    with session_scope(maker) as s:
        assert jobs.mark_cancelled(s, job_id, claim.attempt)
    job = get_job(maker, job_id)
    assert job.status == JobStatus.cancelled and job.finished_at is not None


def test_stale_attempt_cannot_write(maker: sessionmaker[Session]) -> None:
    job_id = add_job(maker, JobKind.fit, PARAMS)
    first = _claim(maker, job_id)
    assert first is not None
    with session_scope(maker) as s:  # the reaper re-queued it and another worker claimed it
        assert jobs.release_job(s, job_id, first.attempt)
    second = _claim(maker, job_id, "w2")
    assert second is not None and second.attempt == 2
    with session_scope(maker) as s:
        assert not jobs.heartbeat(s, job_id, first.attempt).owned
        assert not jobs.finish_job(s, job_id, first.attempt, {"model_id": "stale"})
        assert not jobs.fail_job(s, job_id, first.attempt, "stale")
        assert not jobs.mark_cancelled(s, job_id, first.attempt)
        assert jobs.finish_job(s, job_id, second.attempt, {"model_id": "m"})
    job = get_job(maker, job_id)
    assert job.status == JobStatus.succeeded and job.result == {"model_id": "m"} and job.progress == 1.0
    with session_scope(maker) as s:  # terminal is final
        assert not jobs.fail_job(s, job_id, second.attempt, "late")


def test_fail_records_error(maker: sessionmaker[Session]) -> None:
    job_id = add_job(maker, JobKind.fit, PARAMS)
    claim = _claim(maker, job_id)
    assert claim is not None
    with session_scope(maker) as s:
        assert jobs.fail_job(s, job_id, claim.attempt, "ValueError: bad dims")
    job = get_job(maker, job_id)
    assert job.status == JobStatus.failed and job.error == "ValueError: bad dims" and job.finished_at


def test_reaper_requeues_fails_cancels_and_republishes(maker: sessionmaker[Session]) -> None:
    now = utcnow()
    old = now - timedelta(seconds=600)
    fresh = add_job(maker, JobKind.fit, PARAMS, status=JobStatus.running, attempts=1, heartbeat_at=now)
    stale = add_job(maker, JobKind.fit, PARAMS, status=JobStatus.running, attempts=1, heartbeat_at=old)
    spent = add_job(maker, JobKind.sample, PARAMS, status=JobStatus.running, attempts=3, heartbeat_at=old)
    cancelling = add_job(maker, JobKind.fit, PARAMS, status=JobStatus.cancelling, attempts=1, heartbeat_at=old)
    lost_msg = add_job(maker, JobKind.fit, PARAMS, queue="cpu")
    with session_scope(maker) as s:
        s.get_one(jobs.Job, lost_msg).queued_at = old
    with session_scope(maker) as s:
        report = jobs.reap(s, stale_after_s=60, republish_after_s=120, now=now)
    assert report.requeued == [stale] and report.failed == [spent] and report.cancelled == [cancelling]
    assert {(r.job_id, r.kind, r.queue) for r in report.republished} == {(stale, "fit", "gpu"),
                                                                        (lost_msg, "fit", "cpu")}
    assert get_job(maker, fresh).status == JobStatus.running
    requeued = get_job(maker, stale)
    assert requeued.status == JobStatus.queued and requeued.worker is None and requeued.attempts == 1
    failed = get_job(maker, spent)
    assert failed.status == JobStatus.failed and failed.error is not None
    assert failed.error.startswith("worker lost 3 times: last heartbeat at ")
    assert get_job(maker, cancelling).status == JobStatus.cancelled
    assert get_job(maker, lost_msg).queued_at is not None
    # A second pass right away has nothing to do (queued_at was bumped, requeued job is fresh).
    with session_scope(maker) as s:
        again = jobs.reap(s, stale_after_s=60, republish_after_s=120, now=now + timedelta(seconds=1))
    assert again.republished == [] and again.requeued == [] and again.failed == []
    # The re-queued job can be claimed again, as attempt 2.
    claim = _claim(maker, stale)
    assert claim is not None and claim.attempt == 2
