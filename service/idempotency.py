"""Idempotency-Key handling: the key and a hash of the request are stored on the created row."""

import hashlib
import json
import threading
from typing import Any, TypeVar, cast

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from service.errors import IdempotencyKeyInProgress, IdempotencyKeyReused

Row = TypeVar("Row")


def request_hash(operation: str, payload: Any) -> str:
    """SHA-256 of the operation name and its canonical JSON body (or raw bytes)."""
    h = hashlib.sha256(operation.encode())
    if isinstance(payload, bytes):
        h.update(b"\0bytes\0" + payload)
    else:
        h.update(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode())
    return h.hexdigest()


_held: set[tuple[str, str, str]] = set()
_held_lock = threading.Lock()


def hold_key(session: Session, table: str, owner: str, key: str) -> None:
    """Mark (table, owner, key) as being processed until this request's transaction ends.

    ``IdempotencyKeyInProgress`` (409) if another request holds it: on PostgreSQL a transaction-scoped
    advisory lock (across API processes), elsewhere a per-process set (the embedded default runs one).
    """
    ident = (table, owner, key)
    if session.get_bind().dialect.name == "postgresql":
        lock_id = int.from_bytes(hashlib.sha256("\0".join(ident).encode()).digest()[:8], "big", signed=True)
        if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": lock_id}):
            raise IdempotencyKeyInProgress(f"a request with Idempotency-Key {key!r} is in progress")
        return
    if ident in session.info.setdefault("idempotency_held", set()):
        return
    with _held_lock:
        if ident in _held:
            raise IdempotencyKeyInProgress(f"a request with Idempotency-Key {key!r} is in progress")
        _held.add(ident)
    session.info["idempotency_held"].add(ident)

    def release(sess: Session, transaction: Any) -> None:
        if transaction.parent is None and ident in sess.info.get("idempotency_held", ()):
            sess.info["idempotency_held"].discard(ident)
            with _held_lock:
                _held.discard(ident)

    event.listen(session, "after_transaction_end", release)


def find_replay(session: Session, entity: type[Row], owner: str, key: str | None, digest: str) -> Row | None:
    """The row created earlier with this key, if any; ``IdempotencyKeyReused`` if its request differed.

    Holds the key for the rest of the request (``hold_key``): a second request with the same key while
    this one is still being processed gets 409 ``idempotency_key_in_progress``.
    """
    if key is None:
        return None
    model: Any = entity  # a mapped class with owner, idempotency_key and request_hash columns
    hold_key(session, model.__tablename__, owner, key)
    row = session.scalar(select(model).where(model.owner == owner, model.idempotency_key == key))
    if row is not None and row.request_hash != digest:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was already used with a different request body")
    return cast("Row | None", row)
