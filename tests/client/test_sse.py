"""``GET /api/v1/jobs/{id}/events``: server-sent events arrive in order and the stream ends with the job."""

import httpx
import numpy as np
import pytest

from molrg_client.client import parse_sse
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e]
ORDER = {"queued": 0, "running": 1, "cancelling": 2, "succeeded": 3, "failed": 3, "cancelled": 3}


def _dataset(stack: Stack) -> str:
    X = np.random.default_rng(0).standard_normal((40, 10))
    import io

    buf = io.BytesIO()
    np.save(buf, X)
    r = stack.client.post("/api/v1/datasets/upload", files={"file": ("x.npy", buf.getvalue())})
    return str(r.raise_for_status().json()["id"])


def test_events_in_order_and_end(embedded_stack: Stack) -> None:
    ds = _dataset(embedded_stack)
    job = embedded_stack.client.post("/api/v1/fits", json={"dataset_id": ds, "n_components": 1, "dims": [3],
                                                           "method": "pca"}).raise_for_status().json()
    with embedded_stack.client.stream("GET", f"/api/v1/jobs/{job['id']}/events", timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(parse_sse(r.iter_lines()))  # returns only because the server ends the stream
    names = [e.event for e in events]
    assert names[0] == "status" and names[-1] == "end" and names.count("end") == 1
    ids = [int(e.id) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    statuses = [e.data["status"] for e in events if e.event == "status"]
    assert [ORDER[s] for s in statuses] == sorted(ORDER[s] for s in statuses)
    assert statuses[-1] == "succeeded" and events[-1].data["result"]["model_id"]
    assert all(0.0 <= e.data["progress"] <= 1.0 for e in events if e.event == "progress")
    # A finished job: the stream is status, progress, end at once.
    with embedded_stack.client.stream("GET", f"/api/v1/jobs/{job['id']}/events", timeout=10) as r:
        again = [e.event for e in parse_sse(r.iter_lines())]
    assert again == ["status", "progress", "end"]


def test_events_owner_scoped_and_problem_json(embedded_stack: Stack) -> None:
    r = embedded_stack.client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000/events")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = httpx.get(embedded_stack.url + "/api/v1/jobs/00000000-0000-0000-0000-000000000000/events")
    assert r.status_code == 401


def test_generator_dedups_and_ends() -> None:
    """Unit: one event per change of status or progress, then ``end`` (no server, fake snapshots).
    (The ``: ping`` keep-alives come from FastAPI's SSE support: tests/reliability/test_concurrency.py.)"""
    import asyncio
    import json
    from collections.abc import AsyncIterator
    from typing import Any

    from fastapi.sse import format_sse_event

    from service.routes import events as ev

    base = {"id": "6f1c8c52-9d2e-4a57-8a53-0c1f26f1d2a1", "status": "queued", "progress": 0.0, "progress_detail": None}
    rows = [base, base, base | {"status": "running"},
            base | {"status": "running", "progress": 0.5, "progress_detail": {"step": 5, "loss": 0.1}},
            base | {"status": "succeeded", "progress": 1.0}, base | {"status": "succeeded", "progress": 1.0}]

    async def snapshots() -> AsyncIterator[dict[str, Any]]:
        for row in rows:
            yield row

    async def collect() -> list[str]:
        out = []
        async for e in ev.job_events(snapshots()):
            data = None if e.data is None else json.dumps(e.data)
            out.append(format_sse_event(data_str=data, event=e.event, id=e.id, retry=e.retry).decode())
        return out

    chunks = asyncio.run(collect())
    assert chunks[0].startswith("retry: 2000")
    events = list(parse_sse(iter("".join(chunks).split("\n"))))
    assert [(e.event, e.data["status"]) for e in events] == [
        ("status", "queued"), ("progress", "queued"), ("status", "running"), ("progress", "running"),
        ("status", "succeeded"), ("progress", "succeeded"), ("end", "succeeded")]
    assert [int(e.id) for e in events] == list(range(1, 8))
    assert events[3].data["progress_detail"] == {"step": 5, "loss": 0.1}


def test_progress_detail_is_described_per_job_kind() -> None:
    from molrg_client.client import describe_detail

    assert describe_detail({"step": 120, "total_steps": 500, "loss": 0.01234}) == "step 120/500 loss 0.01234"
    assert describe_detail({"step": 9, "total_steps": 18, "sigma": 0.5213}) == "step 9/18 sigma 0.521"
    assert describe_detail({"fits_done": 40, "fits_total": 80, "chunks_done": 2, "chunks_total": 4}) == (
        "fits 40/80 chunks 2/4")
    assert describe_detail({"step": 0, "total_steps": 0, "loss": 0.8439, "converged": True}) == "step 0/0 loss 0.8439 converged"
    assert describe_detail(None) == ""
