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
from service.routes import Responses, problems
from service.schemas import JobProgressEvent

router = APIRouter(prefix="/jobs", tags=["jobs"])

POLL_S = 0.5
HEARTBEAT_S = 15.0
MAX_STREAM_S = 3600.0  # a client still interested reconnects (the client library falls back to polling)


def _event_item(name: str, data_schema: dict[str, Any], description: str) -> dict[str, Any]:
    """One kind of event as an SSE item: ``event`` names it, ``data`` is JSON of ``data_schema``."""
    return {"type": "object", "title": f"{name} event", "description": description, "required": ["event", "id", "data"],
            "properties": {"event": {"const": name}, "id": {"type": "string", "pattern": "^[0-9]+$"},
                           "data": {"type": "string", "contentMediaType": "application/json",
                                    "contentSchema": data_schema}}}


def _inline(model: type[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # JobStatus is a component already (JobRead uses it)
    return schema


JOB_READ_REF = {"$ref": "#/components/schemas/JobRead"}
# Before OpenAPI 3.2 (which adds `itemSchema`), tools read the `schema` of text/event-stream as ONE event:
# an object with the event name, its numeric id and its JSON data. Schemathesis checks every event of
# the stream against it, and the fuzz tests check each `data` against its `contentSchema`.
EVENT_SCHEMA = {"oneOf": [
    _event_item("status", JOB_READ_REF, "The job's status changed; data is the job."),
    _event_item("progress", _inline(JobProgressEvent), "Progress or its detail changed."),
    _event_item("end", JOB_READ_REF, "The job is terminal (last event); data is the job."),
]}
SSE: Responses = {200: {
    "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
    "description": "A `retry:` line, then events `status`, `progress`, `end` (each: `id:`, `event:`, `data:` JSON) "
                   "and `: keep-alive` comments; the stream ends with the job.",
}}


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
            out.append(_event("progress", seq, JobProgressEvent.model_validate(job).model_dump(mode="json")))
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
