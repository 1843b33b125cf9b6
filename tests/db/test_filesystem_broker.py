"""The embedded broker (db/filesystem_broker.py): atomic message files, unreadable files skipped, and
both Celery apps (API client and worker) selecting it for ``filesystem://`` only."""

import os
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from db import filesystem_broker
from db.filesystem_broker import PARTIAL_SUFFIX, TRANSPORT


def _connection(folder: Path) -> Connection:
    folder.mkdir(exist_ok=True)
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    return Connection("filesystem://", transport=TRANSPORT, transport_options=options)


def test_round_trip_in_order(tmp_path: Path) -> None:
    with _connection(tmp_path / "q") as conn:
        queue = conn.SimpleQueue("jobs")
        for i in range(3):
            queue.put({"job_id": str(i)})
        got = [queue.get(timeout=1) for _ in range(3)]
        assert [m.payload["job_id"] for m in got] == ["0", "1", "2"]
        for m in got:
            m.ack()
        queue.close()


def test_a_message_appears_only_once_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "q"
    seen: list[tuple[str, bool, int]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        # at the moment of the rename: the consumable name does not exist yet, the partial file is whole
        seen.append((str(dst), os.path.exists(dst), os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(filesystem_broker.os, "replace", replace)
    with _connection(folder) as conn:
        queue = conn.SimpleQueue("jobs")
        queue.put({"job_id": "x" * 1000})
        assert len(seen) == 1
        final, existed, size = seen[0]
        assert final.endswith(".jobs.msg") and not existed and size > 1000
        assert not [p for p in os.listdir(folder) if p.endswith(PARTIAL_SUFFIX)]
        assert queue.get(timeout=1).payload["job_id"] == "x" * 1000
        queue.close()


def test_an_unreadable_message_file_is_skipped_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What killed the worker before: an empty file under a consumable name (a publish caught mid-write)."""
    folder = tmp_path / "q"
    with _connection(folder) as conn:
        queue = conn.SimpleQueue("jobs")
        (folder / "0000000000001_empty.jobs.msg").write_bytes(b"")  # sorts first
        queue.put({"job_id": "ok"})
        # the bad file is consumed, logged and skipped; the next message is delivered, nothing raises
        assert queue.get(timeout=1).payload["job_id"] == "ok"
        assert "skipped an unreadable message file" in caplog.text
        assert not list(folder.iterdir())
        queue.close()


def test_both_celery_apps_use_it_for_filesystem_urls_only(tmp_path: Path) -> None:
    from service.main import make_celery_client
    from service.settings import ServiceSettings
    from workers.celery_app import make_celery
    from workers.settings import WorkerSettings

    api = make_celery_client(ServiceSettings(data_dir=tmp_path))
    worker = make_celery(WorkerSettings(data_dir=tmp_path))
    assert api.conf.broker_transport == TRANSPORT == worker.conf.broker_transport
    with api.connection_for_write() as conn:
        assert type(conn.transport) is filesystem_broker.Transport
    redis_url = "redis://127.0.0.1:6379/0"
    assert make_celery_client(ServiceSettings(data_dir=tmp_path, broker_url=redis_url)).conf.broker_transport is None
    assert make_celery(WorkerSettings(data_dir=tmp_path, broker_url=redis_url)).conf.broker_transport is None
