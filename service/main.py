"""Application factory: ``create_app(settings)``; the lifespan creates the engine and Celery client.

Run with ``uvicorn --factory service.main:create_app`` or ``molrg up``. Nothing connects at import.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from db.filesystem_broker import TRANSPORT as FILESYSTEM_TRANSPORT
from db.session import make_engine, make_sessionmaker
from service.docs import mount_docs
from service.errors import register_exception_handlers
from service.limits import BodySizeLimitMiddleware
from service.observability import Metrics, RequestMetricsMiddleware
from service.results_page import router as results_page_router
from service.routes import build_api_router, health, metrics
from service.settings import ServiceSettings, get_settings

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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServiceSettings = app.state.settings
    if settings.database_url.startswith("sqlite") or settings.is_filesystem_broker:
        settings.ensure_dirs()
    extra: dict[str, Any] = {}
    if settings.database_url.startswith("postgresql"):
        # Fail fast (-> 503) instead of hanging when PostgreSQL is down.
        extra = {"connect_args": {"connect_timeout": 5}, "pool_timeout": 10}
    engine = make_engine(settings.database_url, **extra)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.celery = make_celery_client(settings)
    app.state.metrics.jobs.maker = app.state.sessionmaker
    try:
        yield
    finally:
        app.state.metrics.jobs.maker = None
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
    app.include_router(build_api_router())
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(results_page_router)
    mount_docs(app)
    app.add_middleware(BodySizeLimitMiddleware, max_upload_bytes=settings.max_upload_bytes,
                       max_json_bytes=settings.max_json_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    return app
