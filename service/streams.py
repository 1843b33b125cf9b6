"""Shared job watches for the event streams: one poll per watched job, however many streams watch it.

A stream holds no thread and no connection while it waits: it awaits an ``asyncio.Event`` of its job's
watch. The watch is a task that, every ``poll_s`` while at least one stream watches, reads the job in a
short-lived session on a thread of its own small limiter (so polls never take the request threads, and at most
``poll_threads`` connections), publishes the row when it changed, and stops when the job is terminal or gone.
The last stream to leave (the client went away: the task is cancelled) cancels the watch.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from db.enums import TERMINAL_STATUSES, JobStatus

log = logging.getLogger(__name__)

Snapshot = dict[str, Any]
Fetch = Callable[[uuid.UUID], Snapshot | None]  # the job as JSON, or None when it is gone
FAILURES_BEFORE_GIVING_UP = 5


@dataclass
class _Watch:
    snapshot: Snapshot | None
    version: int = 0
    subscribers: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    task: "asyncio.Task[None] | None" = None

    def publish(self, snapshot: Snapshot | None, end: bool = False) -> None:
        self.snapshot, self.version, self.ended = snapshot, self.version + 1, self.ended or end
        event, self.changed = self.changed, asyncio.Event()
        event.set()


def is_terminal(snapshot: Snapshot) -> bool:
    return JobStatus(snapshot["status"]) in TERMINAL_STATUSES


class JobWatcher:
    """Per-process registry of job watches (created by the app's lifespan, on its event loop)."""

    def __init__(self, fetch: Fetch, poll_s: float, poll_threads: int = 2) -> None:
        self.fetch = fetch
        self.poll_s = poll_s
        self.limiter = anyio.CapacityLimiter(poll_threads)
        self.watches: dict[uuid.UUID, _Watch] = {}
        self.polls = 0

    async def changes(self, job_id: uuid.UUID, first: Snapshot, max_s: float | None = None) -> AsyncIterator[Snapshot]:
        """``first``, then the job each time it changes, until it is terminal or gone (then nothing more), or
        for at most ``max_s`` seconds."""
        deadline = None if max_s is None else asyncio.get_running_loop().time() + max_s
        yield first
        if is_terminal(first):
            return
        watch = self.watches.get(job_id)
        if watch is None or watch.ended:
            watch = self.watches[job_id] = _Watch(snapshot=first)
            watch.task = asyncio.create_task(self._poll(job_id, watch), name=f"molrg-watch-{job_id}")
        watch.subscribers += 1
        seen = watch.version
        try:
            while True:
                if watch.version == seen:
                    timeout = None if deadline is None else deadline - asyncio.get_running_loop().time()
                    try:
                        await asyncio.wait_for(watch.changed.wait(), timeout)
                    except TimeoutError:
                        return
                seen = watch.version
                if watch.snapshot is None:
                    return
                yield watch.snapshot
                if watch.ended:
                    return
        finally:
            watch.subscribers -= 1
            if watch.subscribers == 0:
                if self.watches.get(job_id) is watch:
                    del self.watches[job_id]
                if watch.task is not None and not watch.task.done():
                    watch.task.cancel()

    async def _poll(self, job_id: uuid.UUID, watch: _Watch) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                snapshot = await anyio.to_thread.run_sync(self.fetch, job_id, limiter=self.limiter)
            except Exception:
                failures += 1
                log.warning("reading job %s for its event streams failed (%d in a row)", job_id, failures,
                            exc_info=failures == 1)
                if failures >= FAILURES_BEFORE_GIVING_UP:  # the streams end; clients reconnect or poll
                    watch.publish(None, end=True)
                    return
                continue
            failures = 0
            self.polls += 1
            if snapshot is None or is_terminal(snapshot):
                watch.publish(snapshot, end=True)
                return
            if snapshot != watch.snapshot:
                watch.publish(snapshot)

    async def close(self) -> None:
        """End every watch (shutdown): their streams finish."""
        for watch in list(self.watches.values()):
            if watch.task is not None:
                watch.task.cancel()
            watch.publish(None, end=True)
        self.watches.clear()
