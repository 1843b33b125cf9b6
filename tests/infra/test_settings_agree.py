"""The API and the workers read the same MOLRG_* settings and must agree on where things live."""

from pathlib import Path

from service.settings import ServiceSettings
from workers.settings import WorkerSettings


def test_embedded_defaults_agree(tmp_path: Path) -> None:
    api, worker = ServiceSettings(data_dir=tmp_path), WorkerSettings(data_dir=tmp_path)
    assert api.database_url == worker.database_url
    assert api.broker_url == worker.broker_url == "filesystem://"
    a, w = api.broker_transport_options, worker.broker_transport_options()
    for folder in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        assert a[folder] == w[folder], folder


def test_environment_switches_both(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOLRG_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/x")
    monkeypatch.setenv("MOLRG_BROKER_URL", "redis://127.0.0.1:6379/3")
    api, worker = ServiceSettings(data_dir=tmp_path), WorkerSettings(data_dir=tmp_path)
    assert api.database_url == worker.database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/x"
    assert api.broker_url == worker.broker_url == "redis://127.0.0.1:6379/3"


def test_shared_fields_are_declared_once() -> None:
    """Fields both processes read come from one class (db.settings.SharedSettings), not two copies."""
    from db.settings import SharedSettings

    shared = set(SharedSettings.model_fields)
    assert {"data_dir", "database_url", "broker_url", "job_max_attempts"} <= shared
    for cls in (ServiceSettings, WorkerSettings):
        assert issubclass(cls, SharedSettings)
        own = {n for n in cls.model_fields if n not in shared}
        assert not own & set(ServiceSettings.model_fields) & set(WorkerSettings.model_fields), own


def test_queue_names_and_chunk_size_have_one_source(monkeypatch) -> None:
    from db.enums import Queue
    from molrg.sweeps.grid import DEFAULT_MAX_FITS_PER_CHUNK

    monkeypatch.setenv("MOLRG_JOB_MAX_ATTEMPTS", "5")
    assert ServiceSettings().job_max_attempts == WorkerSettings().job_max_attempts == 5
    assert WorkerSettings().queues == [q.value for q in Queue]
    assert WorkerSettings().sweep_chunk_fits == DEFAULT_MAX_FITS_PER_CHUNK
