"""Public health checks: liveness and readiness (database and broker)."""

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.errors import PROBLEM_JSON, PROBLEM_TYPE_BASE
from service.schemas import HealthRead
from service.settings import ServiceSettings

router = APIRouter(prefix="/health", tags=["health"])


def _check_database(request: Request) -> str:
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return f"unreachable: {exc.__class__.__name__}"


def _check_broker(settings: ServiceSettings) -> str:
    if settings.is_filesystem_broker:
        folder = Path(settings.broker_transport_options["data_folder_in"])
        return "ok" if folder.is_dir() and os.access(folder, os.W_OK) else f"folder {folder} not writable"
    from kombu import Connection

    try:
        with Connection(settings.broker_url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        return "ok"
    except Exception as exc:
        return f"unreachable: {exc.__class__.__name__}"


_LIVE = HealthRead(status="ok")


class _ReadyState:
    """One check at a time per process; a check that started after a probe arrived answers it too (probes
    wait on the event loop, holding no thread): a database that hangs costs one thread and one connection,
    however often it is probed, and no answer is older than the probe."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.started_at = -1e9
        self.checks: dict[str, str] = {}


@router.get("/live")
async def live() -> HealthRead:
    """The process is up: answered on the event loop, touching nothing (no thread, no database)."""
    return _LIVE


def _checks(request: Request) -> dict[str, str]:
    return {"database": _check_database(request), "broker": _check_broker(request.app.state.settings)}


@router.get("/ready", responses={503: {"description": "Database or broker unreachable (problem+json)"}})
async def ready(request: Request) -> Any:
    """Ready when the database answers SELECT 1 and the broker is reachable."""
    state: _ReadyState | None = getattr(request.app.state, "ready_state", None)
    if state is None:
        state = request.app.state.ready_state = _ReadyState()
    asked = time.monotonic()
    async with state.lock:
        if state.started_at < asked:
            started = time.monotonic()
            state.checks = await anyio.to_thread.run_sync(_checks, request)
            state.started_at = started
        checks = state.checks
    if all(v == "ok" for v in checks.values()):
        return HealthRead(status="ok", checks=checks)
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    body = {"type": PROBLEM_TYPE_BASE + "not_ready", "title": "Service Unavailable", "status": 503,
            "detail": f"not ready ({failing})", "instance": request.url.path, "code": "not_ready", "checks": checks}
    return JSONResponse(body, status_code=503, media_type=PROBLEM_JSON)
