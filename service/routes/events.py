"""Live job progress as server-sent events: ``GET /api/v1/jobs/{id}/events``.

The stream starts with ``retry: 2000``, then emits ``status`` when the job's status changes (data: the job,
``JobRead``), ``progress`` when its progress or detail (step, loss, cells done, ...) changes (data:
``JobProgressEvent``), and a final ``end`` (data: the job) once it is terminal; each event has a numeric
``id`` increasing by one. FastAPI's SSE support (``EventSourceResponse``) frames the events and sends a
``: ping`` comment after 15 s of silence. Owner-scoped like ``GET /jobs/{id}``.

A stream holds no thread and no database connection while it waits: the job is read by a watch shared by
every stream of that job (``service.streams``, ``MOLRG_STREAM_POLL_S``), and the stream awaits its changes.
An owner may hold ``MOLRG_MAX_STREAMS_PER_OWNER`` streams per API process; one more gets ``429`` with
``Retry-After``. When the client goes away the stream (and, for the last one, the watch) ends at once.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from db.enums import TERMINAL_STATUSES, JobStatus
from service import jobs as use_cases
from service.capacity import StreamCounter
from service.deps import CurrentKey, SessionDep
from service.routes import Responses, problems
from service.schemas import JobProgressEvent
from service.streams import JobWatcher

router = APIRouter(prefix="/jobs", tags=["jobs"])

RETRY_MS = 2000
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
                   "and `: ping` comments after 15 s of silence; the stream ends with the job.",
}}


def openapi_without_item_schema(app: FastAPI) -> None:
    """Keep the document OpenAPI 3.1: FastAPI adds 3.2's generic ``itemSchema`` next to our per-event
    ``schema`` (above), and tools that see ``itemSchema`` read ``schema`` as the whole stream instead."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        doc = generate()  # cached by FastAPI: the edit below happens once and stays
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                for response in operation.get("responses", {}).values():
                    media = response.get("content", {}).get("text/event-stream")
                    if media is not None and "schema" in media:
                        media.pop("itemSchema", None)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


TOO_MANY = problems(429)
TOO_MANY[429] |= {"description": "Too many event streams open for this owner (`MOLRG_MAX_STREAMS_PER_OWNER`)",
                  "headers": {"Retry-After": {"description": "Seconds to wait before opening another stream",
                                              "schema": {"type": "integer"}}}}


def _event(name: str, event_id: int, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(event=name, id=str(event_id), data=data)


async def job_events(snapshots: AsyncIterator[dict[str, Any]]) -> AsyncIterator[ServerSentEvent]:
    """The events of a job from its successive snapshots (``JobRead`` as JSON): one per change, then ``end``;
    a comment when the snapshots stop before the job ended (time limit, or the job can no longer be read)."""
    seq = 0
    last_status: str | None = None
    last_progress: tuple[Any, ...] | None = None
    yield ServerSentEvent(retry=RETRY_MS)
    async for job in snapshots:
        if job["status"] != last_status:
            last_status = job["status"]
            seq += 1
            yield _event("status", seq, job)
        progress = (job["progress"], job.get("progress_detail"))
        if progress != last_progress:
            last_progress = progress
            seq += 1
            yield _event("progress", seq, JobProgressEvent.model_validate(job).model_dump(mode="json"))
        if JobStatus(job["status"]) in TERMINAL_STATUSES:
            seq += 1
            yield _event("end", seq, job)
            return
    yield ServerSentEvent(comment="stream closed before the job ended; reconnect to continue")


def _first(job_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> dict[str, Any]:
    """The job as the caller may see it (404 otherwise), read before the stream starts."""
    return use_cases.to_read(use_cases.get_job(session, principal, job_id)).model_dump(mode="json")


async def _release_on_exit(request: Request) -> AsyncIterator[None]:
    """Request-scoped: runs after the response, however the stream ended (end, error, client gone)."""
    try:
        yield
    finally:
        owner = getattr(request.state, "stream_owner", None)
        if owner is not None:
            counter: StreamCounter = request.app.state.stream_counter
            counter.close(owner)
            request.state.stream_owner = None


async def _claim_stream(request: Request, principal: CurrentKey,
                        _guard: Annotated[None, Depends(_release_on_exit)]) -> None:
    counter: StreamCounter = request.app.state.stream_counter
    counter.open(principal.owner)  # raises TooManyStreams (429 + Retry-After)
    request.state.stream_owner = principal.owner


@router.get("/{job_id}/events", response_class=EventSourceResponse, responses=SSE | problems(404) | TOO_MANY)
async def stream_job_events(job_id: uuid.UUID, request: Request,
                            first: Annotated[dict[str, Any], Depends(_first)],
                            _slot: Annotated[None, Depends(_claim_stream)]) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events for a job: status changes, progress (with the latest loss or cells done), end."""
    watcher: JobWatcher = request.app.state.job_watcher
    async for event in job_events(watcher.changes(job_id, first, max_s=MAX_STREAM_S)):
        yield event
