"""Live job progress as server-sent events: ``GET /api/v1/jobs/{id}/events``.

Polls the job row (~0.5 s) and emits ``status`` when the status changes, ``progress`` when the progress or
its detail (step, loss, cells done, ...) changes, and a final ``end`` event once the job is terminal; a
``: keep-alive`` comment goes out every ~15 s of silence. Owner-scoped like ``GET /jobs/{id}``.
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from db.enums import TERMINAL_STATUSES, JobStatus
from service import jobs as use_cases
from service.auth import Principal
from service.deps import CurrentKey, SessionDep
from service.routes import problems

router = APIRouter(prefix="/jobs", tags=["jobs"])

POLL_S = 0.5
HEARTBEAT_S = 15.0
MAX_STREAM_S = 3600.0  # a client still interested reconnects (the client library falls back to polling)
SSE = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
             "description": "Events `status`, `progress`, `end` (data: JSON job snapshot); ends with the job."}}


def _snapshot(maker: sessionmaker[Session], principal: Principal, job_id: uuid.UUID) -> dict[str, Any]:
    with maker() as session:
        return use_cases.to_read(use_cases.get_job(session, principal, job_id)).model_dump(mode="json")


def _event(name: str, event_id: int, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def job_events(request: Request, maker: sessionmaker[Session], principal: Principal, job_id: uuid.UUID,
                     first: dict[str, Any], poll_s: float = POLL_S,
                     heartbeat_s: float = HEARTBEAT_S) -> AsyncIterator[str]:
    seq = 0
    last_status: str | None = None
    last_progress: tuple[Any, ...] | None = None
    last_sent = started = time.monotonic()
    job = first
    yield "retry: 2000\n\n"
    while True:
        out: list[str] = []
        if job["status"] != last_status:
            last_status = job["status"]
            seq += 1
            out.append(_event("status", seq, job))
        progress = (job["progress"], json.dumps(job.get("progress_detail"), sort_keys=True))
        if progress != last_progress:
            last_progress = progress
            seq += 1
            out.append(_event("progress", seq, {"id": job["id"], "status": job["status"],
                                                "progress": job["progress"],
                                                "progress_detail": job.get("progress_detail")}))
        if JobStatus(job["status"]) in TERMINAL_STATUSES:
            seq += 1
            out.append(_event("end", seq, job))
            for chunk in out:
                yield chunk
            return
        for chunk in out:
            yield chunk
        if out:
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= heartbeat_s:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        if await request.is_disconnected():
            return
        if time.monotonic() - started > MAX_STREAM_S:
            yield ": stream time limit reached; reconnect to continue\n\n"
            return
        await asyncio.sleep(poll_s)
        job = await run_in_threadpool(_snapshot, maker, principal, job_id)


@router.get("/{job_id}/events", response_class=StreamingResponse, responses=SSE | problems(404))
def stream_job_events(job_id: uuid.UUID, request: Request, session: SessionDep,
                      principal: CurrentKey) -> StreamingResponse:
    """Server-sent events for a job: status changes, progress (with the latest loss or cells done), end."""
    first = use_cases.to_read(use_cases.get_job(session, principal, job_id)).model_dump(mode="json")
    maker = request.app.state.sessionmaker
    return StreamingResponse(job_events(request, maker, principal, job_id, first), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
