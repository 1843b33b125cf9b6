"""API keys over HTTP: admins create keys for any owner; everyone lists and revokes their owner's keys.

The plaintext key is returned once, by the create call; only its SHA-256 is stored, and neither is
ever logged. A revoked key gets 401 on its next request.
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from db.models import ApiKey
from service.auth import create_api_key
from service.deps import CurrentKey, SessionDep, SettingsDep
from service.errors import Forbidden
from service.pagination import paginate
from service.routes import problems
from service.schemas import Page, UTCDateTime
from service.scoping import get_visible, visible

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="A label for the key.")
    owner: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@-]+$",
                       description="The owner whose resources the key sees and creates.")
    is_admin: bool = Field(default=False, description="May see every owner's resources and manage keys.")


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    owner: str
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    is_admin: bool
    created_at: UTCDateTime
    revoked_at: UTCDateTime | None = None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The bearer key. Shown once: only its SHA-256 is stored.")


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(403, 422))
def create_key(req: ApiKeyCreate, session: SessionDep, principal: CurrentKey) -> ApiKeyCreated:
    """Create a key for an owner (admin keys only). The response is the only place the key appears."""
    if not principal.is_admin:
        raise Forbidden("only an admin key may create API keys")
    row, key = create_api_key(session, name=req.name, owner=req.owner, is_admin=req.is_admin)
    session.refresh(row)
    return ApiKeyCreated(**ApiKeyRead.model_validate(row).model_dump(), key=key)


@router.get("")
def list_keys(session: SessionDep, principal: CurrentKey, settings: SettingsDep,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50, cursor: str | None = None) -> Page[ApiKeyRead]:
    """List keys (never the keys themselves): the caller's owner's, or every owner's for an admin."""
    rows, nxt = paginate(session, visible(select(ApiKey), ApiKey, principal), ApiKey,
                         min(limit, settings.max_page_size), cursor)
    return Page[ApiKeyRead](items=[ApiKeyRead.model_validate(r) for r in rows], next_cursor=nxt)


@router.post("/{key_id}/revoke", responses=problems(404))
def revoke_key(key_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> ApiKeyRead:
    """Revoke a key (the caller's owner's, or any for an admin); requests with it then get 401. Idempotent."""
    row = get_visible(session, ApiKey, key_id, principal, "api key")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.flush()
    return ApiKeyRead.model_validate(row)
