"""Annotated dependency aliases: the only DI style in the routes."""

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.auth import Principal, authenticate
from service.queue import JobQueue
from service.settings import ServiceSettings


async def get_settings_dep(request: Request) -> ServiceSettings:
    # async: trivial dependencies run on the event loop, not through the thread pool.
    settings: ServiceSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[ServiceSettings, Depends(get_settings_dep)]


async def get_queue(request: Request) -> JobQueue:
    """A fresh per-request buffer over the app's Celery client."""
    return JobQueue(request.app.state.celery)


QueueDep = Annotated[JobQueue, Depends(get_queue)]


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request, queue: QueueDep) -> AsyncIterator[Session]:
    """One unit of work per request: commit once on success, THEN publish; roll back and drop sends on error.

    The request first waits (on the event loop, holding no thread) for one of the process's database slots
    (``service.capacity.DbGate``), so it never waits at the connection pool; the session's blocking calls run
    on the thread pool like the handler's."""
    async with request.app.state.db_gate.slot():
        session: Session = request.app.state.sessionmaker()
        try:
            yield session
        except BaseException:
            queue.clear()
            with anyio.CancelScope(shield=True):  # a client that went away must not leak the connection
                await anyio.to_thread.run_sync(_finish, session, False)
            raise
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_finish, session, True)
        except BaseException:
            queue.clear()
            raise
    if queue.pending:
        await anyio.to_thread.run_sync(queue.flush)


# scope="function": commit (and its errors) happen before the response is sent.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="API key from `molrg api-key create`.")


def get_principal(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if not settings.auth_enabled:
        return Principal(owner=settings.default_owner)
    return authenticate(session, credentials.credentials if credentials else None)


CurrentKey = Annotated[Principal, Depends(get_principal)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Repeat a POST safely: same key + body -> same resource."),
]
