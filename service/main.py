"""Application factory: ``create_app(settings)``; the lifespan creates the engine and Celery client.

Run with ``uvicorn --factory service.main:create_app`` or ``molrg up``. Nothing connects at import.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from db.filesystem_broker import TRANSPORT as FILESYSTEM_TRANSPORT
from db.models import Job
from db.session import make_engine, make_sessionmaker
from service.capacity import DbGate, StreamCounter, register_capacity_handlers
from service.docs import mount_docs
from service.errors import register_exception_handlers
from service.jobs import to_read
from service.limits import BodySizeLimitMiddleware
from service.observability import Metrics, RequestMetricsMiddleware
from service.results_page import router as results_page_router
from service.routes import build_api_router, health, metrics
from service.routes.events import openapi_without_item_schema
from service.settings import ServiceSettings, get_settings
from service.streams import JobWatcher

DESCRIPTION = """Fit low-rank mixture-of-Gaussians (MoLRG) diffusion models, sample from them, and track
the jobs. Send `Authorization: Bearer <key>` (create one with `molrg api-key create`).
Errors are RFC 9457 `application/problem+json` with a stable `code`."""


def make_celery_client(settings: ServiceSettings) -> Any:
    """A publish-only Celery app (result backend off); tasks are sent by name, never imported."""
    from celery import Celery

    client = Celery("molrg-api", broker=settings.broker_url, set_as_current=False)
    if settings.is_filesystem_broker:
        client.conf.broker_transport = FILESYSTEM_TRANSPORT  # atomic message files (db/filesystem_broker.py)
    client.conf.update(
        broker_transport_options=settings.broker_transport_options,
        task_ignore_result=True,
        result_backend=None,
        broker_connection_retry_on_startup=False,
        broker_connection_timeout=3,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    )
    return client


def _read_job(maker: sessionmaker[Session]) -> Callable[[uuid.UUID], dict[str, Any] | None]:
    """How the event-stream watches read a job: a short-lived session per read (streams were authorised
    when they opened, so by id alone)."""
    def read(job_id: uuid.UUID) -> dict[str, Any] | None:
        with maker() as session:
            job = session.get(Job, job_id)
            return None if job is None else to_read(job).model_dump(mode="json")

    return read


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServiceSettings = app.state.settings
    if settings.database_url.startswith("sqlite") or settings.is_filesystem_broker:
        settings.ensure_dirs()
    # Requests take one of db_pool_size slots before they touch the database (service.capacity), so they
    # queue instead of timing out at the pool; the overflow serves health checks, metrics and stream polls.
    extra: dict[str, Any] = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow,
                             "pool_timeout": settings.db_pool_timeout_s}
    if settings.database_url.startswith("postgresql"):
        # Fail fast (-> 503) instead of hanging when PostgreSQL is down.
        extra["connect_args"] = {"connect_timeout": settings.db_connect_timeout_s}
    elif ":memory:" in settings.database_url or settings.database_url in ("sqlite://", "sqlite+pysqlite://"):
        extra = {}  # one shared in-memory database: SQLAlchemy's static pool
    engine = make_engine(settings.database_url, **extra)
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.db_gate = DbGate(settings.db_pool_size, settings.db_queue_timeout_s)
    app.state.stream_counter = StreamCounter(settings.max_streams_per_owner)
    app.state.job_watcher = JobWatcher(_read_job(app.state.sessionmaker), settings.stream_poll_s,
                                       poll_threads=max(1, min(2, settings.db_max_overflow)))
    app.state.celery = make_celery_client(settings)
    app.state.metrics.jobs.maker = app.state.sessionmaker
    app.state.metrics.capacity.sources = (app.state.db_gate, app.state.stream_counter, app.state.job_watcher)
    try:
        yield
    finally:
        await app.state.job_watcher.close()
        app.state.metrics.jobs.maker = None
        app.state.metrics.capacity.sources = None
        app.state.celery.close()
        engine.dispose()


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the API; ``settings`` defaults to the environment (``MOLRG_*``)."""
    settings = settings or get_settings()
    app = FastAPI(title="molrg", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.metrics = Metrics()
    register_exception_handlers(app)
    register_capacity_handlers(app)
    app.include_router(build_api_router())
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(results_page_router)
    openapi_without_item_schema(app)
    mount_docs(app)
    app.add_middleware(BodySizeLimitMiddleware, max_upload_bytes=settings.max_upload_bytes,
                       max_json_bytes=settings.max_json_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    return app
