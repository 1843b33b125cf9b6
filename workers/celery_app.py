"""The Celery app: ``celery -A workers.celery_app worker -Q gpu,cpu -B ...`` loads ``app`` from here."""

import gc
import logging
import socket
from typing import Any

from celery import Celery
from celery.signals import beat_init, celeryd_init, worker_init

from db.enums import JobKind, Queue, task_name
from db.filesystem_broker import TRANSPORT as FILESYSTEM_TRANSPORT
from workers.settings import HARD_LIMIT_GRACE_S, WorkerSettings

logger = logging.getLogger(__name__)

REAP_TASK = "molrg.reap"
POOL_MAINTAIN_INTERVAL_S = 0.25


def make_celery(settings: WorkerSettings | None = None) -> Celery:
    """Build a configured Celery app; creating it connects to nothing."""
    settings = settings or WorkerSettings()
    app = Celery("molrg", broker=settings.broker_url, include=["workers.tasks", "workers.sweeps"])
    if settings.broker_is_filesystem:
        app.conf.broker_transport = FILESYSTEM_TRANSPORT  # atomic message files (db/filesystem_broker.py)
    job_tasks = [task_name(kind) for kind in JobKind]
    app.conf.update(
        broker_transport_options=settings.broker_transport_options(),
        broker_connection_retry_on_startup=True,
        # Celery only delivers job ids; the database is the record (result backend off).
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # Long GPU jobs: ack after the job, one message in flight per process, and a message whose
        # worker died goes back to the queue (safe: the claim + attempts counter deduplicate it).
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=True,
        task_default_queue=Queue.gpu.value,
        task_routes={**{name: {"queue": Queue.gpu.value} for name in job_tasks}, REAP_TASK: {"queue": Queue.cpu.value}},
        task_annotations={
            task_name(kind): {
                "soft_time_limit": settings.time_limit_s(kind),
                "time_limit": settings.time_limit_s(kind) + HARD_LIMIT_GRACE_S,
            }
            for kind in JobKind
        },
        beat_schedule={
            "reap-stale-jobs": {
                "task": REAP_TASK,
                "schedule": settings.reap_interval_s,
                # A reap message that waited behind a long job is useless: let it expire.
                "options": {"queue": Queue.cpu.value, "expires": max(2 * settings.reap_interval_s, 10.0)},
            }
        },
        # Per host: workers on several machines/containers may share data_dir, and a schedule file
        # must have one beat only (the reaper itself is safe to run from every worker).
        beat_schedule_filename=str(settings.data_dir / f"celerybeat-schedule-{socket.gethostname()}"),
        worker_hijack_root_logger=True,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
    )
    app.molrg_settings = settings
    return app


def app_settings(app: Any) -> WorkerSettings:
    """The settings an app was built with (fresh ones from the environment otherwise)."""
    settings = getattr(app, "molrg_settings", None)
    return settings if isinstance(settings, WorkerSettings) else WorkerSettings()


@celeryd_init.connect
def _prepare_worker(instance: Any = None, **_: Any) -> None:
    # The filesystem transport needs its folders before the first poll.
    app_settings(getattr(instance, "app", None) or app).ensure_dirs()


@worker_init.connect
def _preload_in_parent(**_: Any) -> None:
    from workers import resources

    resources.preload()
    _fast_pool_maintenance()
    # Billiard runs gc.collect() before forking each child (one per task here); freezing the
    # imported heap makes that collect cheap (~0.35 s -> ms) and keeps the pages shared after fork.
    gc.collect()
    gc.freeze()


def _fast_pool_maintenance() -> None:
    # With --max-tasks-per-child 1 every task ends its child. On event-loop transports (Redis) the
    # async pool notices the exit from the child's sentinel, but when that fires before the child is
    # reapable the replacement waits for the next periodic maintain_pool, every 5 s: a queued job
    # would idle up to 5 s. Run the (cheap) maintenance every POOL_MAINTAIN_INTERVAL_S instead.
    try:
        from celery.concurrency import asynpool
    except ImportError:  # pragma: no cover - platforms without the async pool
        return
    asynpool.AsynPool.timers = property(
        lambda self: {self.maintain_pool: POOL_MAINTAIN_INTERVAL_S}
    )


@beat_init.connect
def _prepare_beat(sender: Any = None, **_: Any) -> None:
    app_settings(getattr(sender, "app", None) or app).ensure_dirs()


app = make_celery()
