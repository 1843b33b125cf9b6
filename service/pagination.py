"""Opaque cursor pagination over (created_at, id), newest first."""

import base64
import json
import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from service.errors import ValidationFailed

Row = TypeVar("Row")


def encode_cursor(created_at: datetime, ident: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(ident)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, ident = json.loads(raw)
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except Exception:
        raise ValidationFailed.one("cursor", "invalid cursor; pass next_cursor from a previous page") from None


def paginate(session: Session, stmt: Select[Any], entity: Any, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """Apply keyset pagination to ``stmt`` (which selects ``entity``); returns rows and the next cursor."""
    if cursor:
        created, ident = decode_cursor(cursor)
        stmt = stmt.where(
            or_(entity.created_at < created, and_(entity.created_at == created, entity.id < ident))
        )
    stmt = stmt.order_by(entity.created_at.desc(), entity.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor
