"""Annotated dependency aliases: the only DI style in the routes."""

from collections.abc import Iterator
from typing import Annotated

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


def get_session(request: Request, queue: QueueDep) -> Iterator[Session]:
    """One unit of work per request: commit once on success, THEN publish; roll back and drop sends on error."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        queue.clear()
        raise
    finally:
        session.close()
    queue.flush()


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
