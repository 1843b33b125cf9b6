"""JobQueue publishes by task name on the job's queue, through a real Kombu filesystem broker."""

from pathlib import Path
from typing import Any

import pytest

from service.main import make_celery_client
from service.queue import JobQueue
from service.settings import ServiceSettings


def test_filesystem_broker_receives_the_message(tmp_path: Path) -> None:
    settings = ServiceSettings(data_dir=tmp_path)
    settings.ensure_dirs()
    client = make_celery_client(settings)
    queue = JobQueue(client)
    queue.enqueue("fit", "1234", "gpu")
    assert not list((tmp_path / "broker" / "messages").iterdir())  # buffered until flush
    queue.flush()
    files = list((tmp_path / "broker" / "messages").iterdir())
    assert len(files) == 1 and files[0].name.endswith(".gpu.msg")
    assert b"molrg.fit" in files[0].read_bytes() and b"1234" in files[0].read_bytes()
    client.close()


def test_clear_drops_pending_and_settings_defaults(tmp_path: Path) -> None:
    queue = JobQueue(None)
    queue.enqueue("sample", "x", "gpu")
    queue.clear()
    queue.flush()  # nothing to send, no error
    s = ServiceSettings(data_dir=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path}/molrg.db"
    assert s.broker_transport_options == {
        "data_folder_in": f"{tmp_path}/broker/messages", "data_folder_out": f"{tmp_path}/broker/messages",
        "processed_folder": f"{tmp_path}/broker/processed", "control_folder": f"{tmp_path}/broker/control",
        "store_processed": False}


def _redis_reason() -> str | None:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return None
    except OSError as exc:
        return f"Redis at 127.0.0.1:6379 unreachable ({exc.__class__.__name__})"


@pytest.mark.redis
def test_redis_broker_receives_the_message_and_ready_is_200(make_api: Any, sqlite_url: str, tmp_path: Path) -> None:
    if (reason := _redis_reason()) is not None:
        pytest.skip(reason)
    import redis

    url = "redis://127.0.0.1:6379/13"
    r = redis.Redis.from_url(url)
    r.delete("gpu")
    settings = ServiceSettings(data_dir=tmp_path, broker_url=url)
    client = make_celery_client(settings)
    queue = JobQueue(client)
    queue.enqueue("fit", "abcd", "gpu")
    queue.flush()
    assert r.llen("gpu") == 1 and b"abcd" in r.lindex("gpu", 0)
    r.delete("gpu")
    client.close()
    api = make_api(sqlite_url, broker_url=url)
    assert api.client.get("/health/ready").json()["checks"] == {"database": "ok", "broker": "ok"}
