"""Idempotency-Key handling: the key and a hash of the request are stored on the created row."""

import hashlib
import json
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import IdempotencyKeyReused

Row = TypeVar("Row")


def request_hash(operation: str, payload: Any) -> str:
    """SHA-256 of the operation name and its canonical JSON body (or raw bytes)."""
    h = hashlib.sha256(operation.encode())
    if isinstance(payload, bytes):
        h.update(b"\0bytes\0" + payload)
    else:
        h.update(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode())
    return h.hexdigest()


def find_replay(session: Session, entity: type[Row], owner: str, key: str | None, digest: str) -> Row | None:
    """The row created earlier with this key, if any; ``IdempotencyKeyReused`` if its request differed."""
    if key is None:
        return None
    row = session.scalar(
        select(entity).where(entity.owner == owner, entity.idempotency_key == key)  # type: ignore[attr-defined]
    )
    if row is not None and row.request_hash != digest:  # type: ignore[attr-defined]
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was already used with a different request body")
    return row
