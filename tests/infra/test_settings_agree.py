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
