"""Unit tests of the shared job watches (service.streams) and the admission gate (service.capacity): no server."""

import asyncio
import uuid
from typing import Any

import pytest

from service.capacity import DbGate, Overloaded, StreamCounter, TooManyStreams
from service.streams import FAILURES_BEFORE_GIVING_UP, JobWatcher


def _snap(status: str = "queued", progress: float = 0.0) -> dict[str, Any]:
    return {"id": "j", "status": status, "progress": progress, "progress_detail": None}


class Rows:
    """A fake job table: ``fetch`` counts the reads (made on a worker thread by the watcher)."""

    def __init__(self, row: dict[str, Any] | None) -> None:
        self.row, self.reads, self.fail = row, 0, False

    def fetch(self, _job_id: uuid.UUID) -> dict[str, Any] | None:
        self.reads += 1
        if self.fail:
            raise RuntimeError("database down")
        return self.row


async def _collect(it: Any, out: list[dict[str, Any]]) -> None:
    async for snap in it:
        out.append(snap)


def test_one_poll_per_job_however_many_streams() -> None:
    rows = Rows(_snap())
    job = uuid.uuid4()

    async def scenario() -> list[list[dict[str, Any]]]:
        watcher = JobWatcher(rows.fetch, poll_s=0.02)
        outs: list[list[dict[str, Any]]] = [[] for _ in range(50)]
        tasks = [asyncio.create_task(_collect(watcher.changes(job, _snap()), out)) for out in outs]
        await asyncio.sleep(0.3)
        assert len(watcher.watches) == 1
        reads = rows.reads
        assert 3 <= reads <= 20  # ~0.3 s / 0.02 s polls for all 50 streams, not 50x that
        rows.row = _snap("running", 0.5)
        await asyncio.sleep(0.1)
        rows.row = _snap("succeeded", 1.0)
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert watcher.watches == {}
        return outs

    outs = asyncio.run(scenario())
    for out in outs:
        assert [s["status"] for s in out] == ["queued", "running", "succeeded"]


def test_last_stream_leaving_cancels_the_watch() -> None:
    rows = Rows(_snap())
    job = uuid.uuid4()

    async def scenario() -> None:
        watcher = JobWatcher(rows.fetch, poll_s=0.01)
        tasks = [asyncio.create_task(_collect(watcher.changes(job, _snap()), [])) for _ in range(3)]
        await asyncio.sleep(0.05)
        watch = watcher.watches[job]
        tasks[0].cancel()
        await asyncio.sleep(0.05)
        assert watch.subscribers == 2 and watch.task is not None and not watch.task.done()
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)
        assert watcher.watches == {} and watch.task.cancelled()
        reads = rows.reads
        await asyncio.sleep(0.05)
        assert rows.reads == reads  # nobody watches: no more polls

    asyncio.run(scenario())


def test_failing_reads_end_the_streams_and_a_gone_job_ends_them_too() -> None:
    rows = Rows(_snap())
    rows.fail = True

    async def scenario() -> None:
        watcher = JobWatcher(rows.fetch, poll_s=0.005)
        out: list[dict[str, Any]] = []
        await asyncio.wait_for(_collect(watcher.changes(uuid.uuid4(), _snap()), out), 5)
        assert rows.reads == FAILURES_BEFORE_GIVING_UP and out == [_snap()]
        rows.fail, rows.row = False, None  # deleted meanwhile
        out2: list[dict[str, Any]] = []
        await asyncio.wait_for(_collect(watcher.changes(uuid.uuid4(), _snap()), out2), 5)
        assert out2 == [_snap()]

    asyncio.run(scenario())


def test_a_terminal_job_is_not_watched() -> None:
    rows = Rows(_snap("succeeded", 1.0))

    async def scenario() -> list[dict[str, Any]]:
        watcher = JobWatcher(rows.fetch, poll_s=0.01)
        out: list[dict[str, Any]] = []
        await _collect(watcher.changes(uuid.uuid4(), _snap("failed")), out)
        assert watcher.watches == {} and rows.reads == 0
        return out

    assert [s["status"] for s in asyncio.run(scenario())] == ["failed"]


def test_gate_queues_in_order_and_times_out_as_overloaded() -> None:
    async def scenario() -> list[int]:
        gate = DbGate(2, queue_timeout_s=5)
        order: list[int] = []

        async def job(i: int) -> None:
            async with gate.slot():
                assert gate.in_use <= 2
                order.append(i)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(job(i) for i in range(20)))
        assert gate.in_use == 0 and gate.waiting == 0
        tight = DbGate(1, queue_timeout_s=0.05)
        async with tight.slot():
            with pytest.raises(Overloaded):
                async with tight.slot():
                    pass
        assert tight.waiting == 0
        return order

    assert asyncio.run(scenario()) == list(range(20))  # FIFO


def test_stream_counter_caps_per_owner() -> None:
    counter = StreamCounter(per_owner=2)
    counter.open("a")
    counter.open("a")
    with pytest.raises(TooManyStreams):
        counter.open("a")
    counter.open("b")
    assert counter.total == 3
    counter.close("a")
    counter.open("a")
    for owner in ("a", "a", "b"):
        counter.close(owner)
    assert counter.total == 0 and counter.by_owner == {}


def test_a_stream_ends_after_max_s_without_a_change() -> None:
    rows = Rows(_snap())

    async def scenario() -> tuple[list[dict[str, Any]], float]:
        watcher = JobWatcher(rows.fetch, poll_s=0.01)
        out: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.wait_for(_collect(watcher.changes(uuid.uuid4(), _snap(), max_s=0.2), out), 5)
        assert watcher.watches == {}
        return out, loop.time() - t0

    out, elapsed = asyncio.run(scenario())
    assert out == [_snap()] and 0.15 < elapsed < 2.0
