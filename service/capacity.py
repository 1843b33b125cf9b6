"""Admission control of one API process: requests queue for a database slot; event streams are capped per owner.

Why a queue in front of the pool: a synchronous handler that waits for a pooled connection holds one of the
worker threads while it waits, and a request that holds a connection may itself wait for a thread (its next
step). With more concurrent requests than connections, both waits meet and clear only at the pool timeout:
100 concurrent reads got 72 ``503 database_unavailable`` from a healthy database. Here a request first takes
one of ``db_pool_size`` slots, waiting on the event loop (no thread held, FIFO), and only then opens its
session, so no request ever waits at the pool and a 503 means the database itself failed.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.errors import ServiceError, problem


class Overloaded(ServiceError):
    """A request waited ``db_queue_timeout_s`` for a database slot (the process is far beyond its capacity)."""

    code = "overloaded"
    status = 503
    retry_after = 5


class TooManyStreams(ServiceError):
    """The owner has ``max_streams_per_owner`` event streams open on this API process already."""

    code = "too_many_streams"
    status = 429
    retry_after = 5


class DbGate:
    """``slots`` requests at a time do database work; the rest wait in FIFO order on the event loop."""

    def __init__(self, slots: int, queue_timeout_s: float) -> None:
        self.slots = slots
        self.queue_timeout_s = queue_timeout_s
        self._sem = asyncio.Semaphore(slots)
        self.waiting = 0
        self.in_use = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._sem.locked():  # else a slot is free: take it without a timer
            self.waiting += 1
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(self._sem.acquire(), self.queue_timeout_s)
            except TimeoutError:
                raise Overloaded(f"no database slot free after {time.monotonic() - t0:.0f} s; retry later") from None
            finally:
                self.waiting -= 1
        else:
            await self._sem.acquire()
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._sem.release()


class StreamCounter:
    """Open event streams per owner in this process; ``open`` refuses past the cap."""

    def __init__(self, per_owner: int) -> None:
        self.per_owner = per_owner
        self.by_owner: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.by_owner.values())

    def open(self, owner: str) -> None:
        n = self.by_owner.get(owner, 0)
        if n >= self.per_owner:
            raise TooManyStreams(f"{n} event streams open for this owner (max_streams_per_owner={self.per_owner}); "
                                 "close one, or poll GET /api/v1/jobs/{id}")
        self.by_owner[owner] = n + 1

    def close(self, owner: str) -> None:
        n = self.by_owner.get(owner, 0) - 1
        if n > 0:
            self.by_owner[owner] = n
        else:
            self.by_owner.pop(owner, None)


async def _capacity_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Overloaded | TooManyStreams)
    return problem(request, exc.status, exc.code, exc.detail, headers={"Retry-After": str(exc.retry_after)})


def register_capacity_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Overloaded, _capacity_error)
    app.add_exception_handler(TooManyStreams, _capacity_error)
