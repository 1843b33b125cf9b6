"""Settings and the Celery app configuration (no broker is contacted)."""

from pathlib import Path

import pytest

from workers.celery_app import REAP_TASK, make_celery
from workers.settings import WorkerSettings


def test_defaults_under_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("MOLRG_DATABASE_URL", "MOLRG_BROKER_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MOLRG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOLRG_JOB_TIME_LIMIT_S", '{"fit": 7}')
    s = WorkerSettings()
    assert s.database_url == f"sqlite:///{tmp_path}/molrg.db"
    assert s.broker_url == "filesystem://"
    assert s.time_limit_s("fit") == 7 and s.time_limit_s("sample") == 3600
    opts = s.broker_transport_options()
    assert opts["data_folder_in"] == opts["data_folder_out"] == str(tmp_path / "broker" / "messages")
    assert opts["processed_folder"] == str(tmp_path / "broker" / "processed")
    assert opts["store_processed"] is False


def test_celery_config_filesystem(tmp_path: Path) -> None:
    app = make_celery(WorkerSettings(data_dir=tmp_path, reap_interval_s=4, job_time_limit_s={"fit": 100}))
    c = app.conf
    assert c.task_acks_late and c.worker_prefetch_multiplier == 1 and c.task_reject_on_worker_lost
    assert c.task_ignore_result and c.broker_connection_retry_on_startup
    assert c.task_routes["molrg.fit"] == {"queue": "gpu"} and c.task_routes[REAP_TASK] == {"queue": "cpu"}
    assert c.task_annotations["molrg.fit"]["soft_time_limit"] == 100
    assert c.task_annotations["molrg.fit"]["time_limit"] > 100
    entry = c.beat_schedule["reap-stale-jobs"]
    assert entry["task"] == REAP_TASK and entry["schedule"] == 4 and entry["options"]["queue"] == "cpu"
    assert c.beat_schedule_filename.startswith(str(tmp_path))
    assert c.broker_transport_options["data_folder_in"].startswith(str(tmp_path))


def test_celery_config_redis_visibility_timeout(tmp_path: Path) -> None:
    s = WorkerSettings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0",
                       job_time_limit_s={"fit": 5000, "sample": 10})
    app = make_celery(s)
    assert app.conf.broker_transport_options["visibility_timeout"] > 5000 + 60


def test_tasks_registered() -> None:
    from workers.celery_app import app

    app.loader.import_default_modules()
    import workers.tasks  # noqa: F401

    assert {"molrg.fit", "molrg.sample", "molrg.reap"} <= set(app.tasks)
    assert app.tasks["molrg.fit"].soft_time_limit == app.conf.task_annotations["molrg.fit"]["soft_time_limit"]


def test_pool_maintenance_is_frequent() -> None:
    from celery.concurrency.asynpool import AsynPool

    from workers import celery_app

    celery_app._fast_pool_maintenance()
    pool = AsynPool.__new__(AsynPool)
    assert list(AsynPool.timers.fget(pool).values()) == [celery_app.POOL_MAINTAIN_INTERVAL_S]  # type: ignore[attr-defined]
