"""JobQueue publishes by task name on the job's queue, through a real Kombu filesystem broker."""

from pathlib import Path

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
        "processed_folder": f"{tmp_path}/broker/processed", "store_processed": False}
