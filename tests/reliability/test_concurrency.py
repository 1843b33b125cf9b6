"""Concurrency degrades by queueing, never by failing (issue 13), against a real uvicorn on PostgreSQL.

The pool is made tiny (2 connections, no overflow, 1 s pool timeout) and the thread pool small, so a request
that waited at the pool instead of in the admission queue would get a 503 within a second: before the
queue, 100 concurrent reads with 15 connections got 72 ``503 database_unavailable``.
"""

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from db.enums import JobKind, JobStatus
from db.models import Job
from db.session import session_scope
from tests.db.dbfixtures import add_job, free_port
from tests.reliability.serving import LiveProbe, Served

pytestmark = [pytest.mark.slow]  # each starts a uvicorn (or molrg up) process

TINY_POOL = {"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout_s": 1.0, "api_threads": 4}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(database_url: str, **overrides: Any) -> Served:
        served = Served(tmp_path / f"data{len(started)}", database_url, **overrides)
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()


def _jobs(served: Served, owner: str, n: int) -> list[str]:
    return [str(add_job(served.maker, JobKind.fit, {"dataset_id": str(uuid.uuid4())}, owner=owner)) for _ in range(n)]


async def _gets(url: str, headers: dict[str, str], paths: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=len(paths))
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
        return await asyncio.gather(*(client.get(p) for p in paths))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_200_concurrent_reads_all_answered_with_2_connections(serve: Callable[..., Served], backend: str,
                                                              request: pytest.FixtureRequest) -> None:
    served = serve(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "db_url_pg"), **TINY_POOL)
    h = served.headers()
    ids = _jobs(served, "alice", 5)
    paths = [f"/api/v1/jobs/{ids[i % 5]}" for i in range(200)]
    probe = LiveProbe(served.url)
    t0 = time.perf_counter()
    responses = asyncio.run(_gets(served.url, h, paths))
    wall = time.perf_counter() - t0
    live = probe.stop()
    print(f"200 reads in {wall:.1f} s; /health/live meanwhile: {live}")
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 200, {s: statuses.count(s) for s in set(statuses)}
    assert {r.json()["id"] for r in responses} == set(ids)
    # /health/live does not wait behind the queue (before: 8-28 s under 60 streams). The bench holds it to
    # p99 < 100 ms; the suite allows for a CI machine's other tests on the same cores.
    assert live["errors"] == 0 and live["n"] > 5 and live["p99_ms"] < 250, live
    metrics = httpx.get(served.url + "/metrics").text
    assert served.gauge(metrics, "molrg_db_slots_in_use") == 0
    assert served.gauge(metrics, "molrg_db_queue_waiting") == 0


def test_database_down_is_a_fast_503(serve: Callable[..., Served]) -> None:
    """A 503 means the database is really unreachable, and it comes at once (not after a pool timeout)."""
    served = serve(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test", **TINY_POOL)
    t0 = time.perf_counter()
    responses = asyncio.run(_gets(served.url, {"Authorization": "Bearer molrg_x"},
                                  [f"/api/v1/jobs/{uuid.uuid4()}" for _ in range(20)]))
    elapsed = time.perf_counter() - t0
    assert {r.status_code for r in responses} == {503}
    assert {r.json()["code"] for r in responses} == {"database_unavailable"}
    assert all(r.headers["retry-after"] for r in responses)
    assert elapsed < 10, elapsed
    assert httpx.get(served.url + "/health/live").status_code == 200  # touches nothing
    assert httpx.get(served.url + "/health/ready", timeout=30).status_code == 503


class Blackhole:
    """A TCP port that accepts connections and never answers (a database that hangs); counts the accepts."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[Any] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_ready_probes_share_one_check_when_the_database_hangs(serve: Callable[..., Served]) -> None:
    hole = Blackhole()
    try:
        served = serve(f"postgresql+psycopg://postgres@127.0.0.1:{hole.port}/test", db_connect_timeout_s=2)

        async def probes() -> tuple[list[httpx.Response], float]:
            async with httpx.AsyncClient(base_url=served.url, timeout=60) as c:
                ready = asyncio.gather(*(c.get("/health/ready") for _ in range(30)))
                await asyncio.sleep(0.2)
                t1 = time.perf_counter()
                assert (await c.get("/health/live")).status_code == 200
                live_s = time.perf_counter() - t1
                return await ready, live_s

        responses, live_s = asyncio.run(probes())
        assert {r.status_code for r in responses} == {503}
        assert all(r.json()["checks"]["database"].startswith("unreachable") for r in responses)
        # 30 probes, 2 s connect timeout each: at most a few checks ran (one at a time, shared), not 30
        assert len(hole.accepted) <= 4, len(hole.accepted)
        assert live_s < 1.0, live_s
    finally:
        hole.close()


class Streams:
    """Event streams held open by one async client; ``events[i]`` collects stream i's event names."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.client = httpx.AsyncClient(base_url=url, headers=headers, timeout=httpx.Timeout(30, read=60),
                                        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))
        self.tasks: list[asyncio.Task[None]] = []
        self.events: list[list[str]] = []
        self.opened: list[asyncio.Event] = []
        self.status: list[int] = []

    def open(self, job_id: str) -> int:
        i = len(self.tasks)
        self.events.append([])
        self.opened.append(asyncio.Event())
        self.status.append(0)
        self.tasks.append(asyncio.create_task(self._read(i, job_id)))
        return i

    async def _read(self, i: int, job_id: str) -> None:
        try:
            async with self.client.stream("GET", f"/api/v1/jobs/{job_id}/events") as r:
                self.status[i] = r.status_code
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        self.events[i].append(line.split(":", 1)[1].strip())
                        self.opened[i].set()
        finally:
            self.opened[i].set()

    async def wait_opened(self, timeout: float = 30) -> None:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self.opened)), timeout)

    async def drop(self) -> None:
        """The client goes away: every connection is closed at once."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


async def _until(predicate: Callable[[], Any], timeout: float) -> float:
    t0 = time.monotonic()
    while not await predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


@pytest.mark.postgres
def test_150_streams_hold_no_thread_or_connection_and_end_with_the_client(serve: Callable[..., Served],
                                                                          db_url_pg: str) -> None:
    served = serve(db_url_pg, **TINY_POOL, max_streams_per_owner=200, stream_poll_s=0.2)
    h = served.headers()
    ids = _jobs(served, "alice", 5)

    async def metric(name: str) -> float | None:
        async with httpx.AsyncClient(base_url=served.url) as c:
            return served.gauge((await c.get("/metrics")).text, name)

    async def scenario() -> dict[str, Any]:
        streams = Streams(served.url, h)
        for i in range(150):
            streams.open(ids[i % 5])
        await streams.wait_opened()
        assert set(streams.status) == {200}
        # 150 open streams on 2 connections and 4 threads: 100 reads still all answered.
        t0 = time.perf_counter()
        reads = await _gets(served.url, h, [f"/api/v1/jobs/{ids[i % 5]}" for i in range(100)])
        reads_s = time.perf_counter() - t0
        assert [r.status_code for r in reads] == [200] * 100
        assert await metric("molrg_sse_streams_open") == 150
        assert await metric("molrg_sse_job_watches") == 5  # one poll per job, not per stream
        # A change reaches every stream of that job; a terminal job ends its streams (and its watch).
        with session_scope(served.maker) as s:
            s.execute(sa.update(Job).where(Job.id == uuid.UUID(ids[0])).values(status=JobStatus.running))
        mine = [i for i in range(150) if i % 5 == 0]
        await _until(lambda: _true(all(streams.events[i].count("status") >= 2 for i in mine)), 10)
        with session_scope(served.maker) as s:
            s.execute(sa.update(Job).where(Job.id == uuid.UUID(ids[0])).values(status=JobStatus.succeeded,
                                                                                  progress=1.0))
        await _until(lambda: _true(all(streams.tasks[i].done() for i in mine)), 10)
        assert all(streams.events[i][-1] == "end" for i in mine)
        await _until(lambda: _eq(metric("molrg_sse_job_watches"), 4), 5)
        # The client goes away: the API answers at once and counts no stream within a few seconds.
        await streams.drop()
        t1 = time.perf_counter()
        after = await _gets(served.url, h, [f"/api/v1/jobs/{ids[1]}"])
        first_answer = time.perf_counter() - t1
        closed = await _until(lambda: _eq(metric("molrg_sse_streams_open"), 0), 5)
        assert await metric("molrg_sse_job_watches") == 0
        return {"reads_s": reads_s, "after": after[0].status_code, "first_answer": first_answer, "closed": closed}

    out = asyncio.run(scenario())
    print(out)
    assert out["after"] == 200 and out["first_answer"] < 2.0, out


async def _true(value: bool) -> bool:
    return value


async def _eq(coro: Any, expected: float) -> bool:
    return bool(await coro == expected)


def test_stream_cap_per_owner_is_429_with_retry_after(serve: Callable[..., Served], sqlite_url: str) -> None:
    served = serve(sqlite_url, max_streams_per_owner=2)
    alice, bob = served.headers("alice"), served.headers("bob")
    a_jobs, b_jobs = _jobs(served, "alice", 1), _jobs(served, "bob", 1)

    async def scenario() -> None:
        streams = Streams(served.url, alice)
        first, _second = streams.open(a_jobs[0]), streams.open(a_jobs[0])
        await streams.wait_opened()
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as c:
            r = await c.get(f"/api/v1/jobs/{a_jobs[0]}/events", headers=alice)
            assert r.status_code == 429, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "too_many_streams" and int(r.headers["retry-after"]) > 0
            others = Streams(served.url, bob)  # the cap is per owner
            others.open(b_jobs[0])
            await others.wait_opened()
            assert others.status == [200]
            await others.drop()
            # a stream that ends frees its place
            streams.tasks[first].cancel()
            async def reopened() -> bool:
                async with c.stream("GET", f"/api/v1/jobs/{a_jobs[0]}/events", headers=alice) as again:
                    return again.status_code == 200
            await _until(reopened, 5)
        await streams.drop()

    asyncio.run(scenario())


def test_keepalive_pings_come_from_fastapi(serve: Callable[..., Served], sqlite_url: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import fastapi.routing

    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.3)
    served = serve(sqlite_url, in_process=True)  # the patched interval lives in this process
    h = served.headers()
    job = _jobs(served, "alice", 1)[0]
    lines = []
    with httpx.stream("GET", f"{served.url}/api/v1/jobs/{job}/events", headers=h, timeout=10) as r:
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith(":"):
                break
    assert lines[0] == "retry: 2000" and ": ping" in lines
    assert [line for line in lines if line.startswith("event:")] == ["event: status", "event: progress"]


def test_molrg_up_exits_on_sigterm_with_a_stream_open(tmp_path: Path) -> None:
    """uvicorn waits for open requests on SIGTERM; an open event stream must not keep ``molrg up`` alive."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    data, port = tmp_path / "data", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
    exe = str(Path(sys.executable).parent / "molrg")
    proc = subprocess.Popen([exe, "up", "--no-worker", "--port", str(port), "--data-dir", str(data)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not (data / "api-key").exists() or not _ready(url):
            assert proc.poll() is None and time.monotonic() < deadline, "molrg up did not start"
            time.sleep(0.2)
        h = {"Authorization": f"Bearer {(data / 'api-key').read_text().strip()}"}
        ds = httpx.post(url + "/api/v1/datasets", headers=h, json={"name": "s", "synthetic": {
            "ambient_dim": 8, "dims": [2], "n_samples": 6, "seed": 0}}).raise_for_status().json()
        job = httpx.post(url + "/api/v1/fits", headers=h, json={"dataset_id": ds["id"], "n_components": 1,
                                                                "dims": [2], "method": "pca"}).raise_for_status().json()
        opened = threading.Event()

        def hold() -> None:
            try:
                with httpx.stream("GET", f"{url}/api/v1/jobs/{job['id']}/events", headers=h, timeout=60) as r:
                    for _line in r.iter_lines():
                        opened.set()
            except httpx.HTTPError:
                pass
            finally:
                opened.set()

        threading.Thread(target=hold, daemon=True).start()
        assert opened.wait(30)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        assert time.monotonic() - t0 < 25
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
