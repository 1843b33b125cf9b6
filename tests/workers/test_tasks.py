"""Task wrappers with mocks (no eager mode), resources and the heartbeat thread."""

import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from db import jobs
from db.enums import JobKind, JobStatus
from db.session import session_scope
from tests.db.dbfixtures import add_job, get_job
from workers import pipelines, resources, tasks
from workers.heartbeat import Heartbeat
from workers.settings import WorkerSettings


@pytest.fixture(autouse=True)
def _fresh_resources(tmp_path: Path) -> Any:
    resources.reset()
    resources.set_settings(WorkerSettings(data_dir=tmp_path, device="cpu"))
    yield
    resources.reset()


def test_task_hands_job_id_to_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_execute(kind: JobKind, job_id: uuid.UUID, **kw: Any) -> pipelines.Outcome:
        seen.update(kind=kind, job_id=job_id, device=kw["device"]())
        return pipelines.Outcome.succeeded

    monkeypatch.setattr(tasks.resources, "set_settings", lambda s: None)
    monkeypatch.setattr(pipelines, "execute", fake_execute)
    job_id = uuid.uuid4()
    assert tasks.fit(str(job_id)) == "succeeded"
    assert seen == {"kind": JobKind.fit, "job_id": job_id, "device": torch.device("cpu")}
    assert tasks.sample("not-a-uuid") == "invalid"


def test_only_transient_errors_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    class Retried(Exception):
        pass

    calls: list[BaseException | None] = []

    def fake_retry(*, exc: BaseException | None = None, **_: Any) -> Exception:
        calls.append(exc)
        return Retried()

    monkeypatch.setattr(tasks.resources, "set_settings", lambda s: None)
    monkeypatch.setattr(tasks.fit, "retry", fake_retry)

    def db_down(*_: Any, **__: Any) -> pipelines.Outcome:
        raise sa_exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(pipelines, "execute", db_down)
    with pytest.raises(Retried):
        tasks.fit(str(uuid.uuid4()))
    assert len(calls) == 1 and isinstance(calls[0], sa_exc.OperationalError)

    def bug(*_: Any, **__: Any) -> pipelines.Outcome:
        raise KeyError("bug")

    monkeypatch.setattr(pipelines, "execute", bug)
    with pytest.raises(KeyError):
        tasks.fit(str(uuid.uuid4()))
    assert len(calls) == 1


def test_device_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resources.get_device() == torch.device("cpu")
    resources.reset()
    resources.set_settings(WorkerSettings(data_dir=tmp_path, device="auto"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resources.get_device() == torch.device("cpu")
    resources.reset()
    resources.set_settings(WorkerSettings(data_dir=tmp_path, device="auto"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resources.get_device() == torch.device("cuda")


def test_torch_threads_setting(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    resources.reset()
    resources.set_settings(WorkerSettings(data_dir=tmp_path, device="cpu", torch_threads=1))
    try:
        resources.get_device()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_sessionmaker_is_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    first = resources.get_sessionmaker()
    assert resources.get_sessionmaker() is first
    monkeypatch.setattr(resources.os, "getpid", lambda: -1)  # as seen in a forked child
    assert resources.get_sessionmaker() is not first


def test_heartbeat_thread_beats_and_sees_cancel(maker: sessionmaker[Session]) -> None:
    job_id = add_job(maker, JobKind.fit, {})
    with session_scope(maker) as s:
        claim = jobs.claim_job(s, job_id, "w")
    assert claim is not None
    before = get_job(maker, job_id).heartbeat_at
    with Heartbeat(maker, job_id, claim.attempt, interval_s=0.05) as hb:
        hb.report(0.5, {"step": 5})
        assert not hb.cancel.wait(0.3)
        job = get_job(maker, job_id)
        assert job.progress == 0.5 and job.heartbeat_at is not None and before is not None
        assert job.heartbeat_at >= before
        with session_scope(maker) as s:
            row = s.get_one(jobs.Job, job_id)
            row.status, row.cancel_requested = JobStatus.cancelling, True
        assert hb.cancel.wait(5) and hb.should_stop and not hb.lost.is_set()
    with session_scope(maker) as s:  # the reaper takes the job away: the old run sees it is lost
        row = s.get_one(jobs.Job, job_id)
        row.status, row.attempts = JobStatus.running, claim.attempt + 1
    with Heartbeat(maker, job_id, claim.attempt, interval_s=0.05) as hb:
        assert hb.lost.wait(5) and hb.should_stop
