"""Bearer API keys: stored as SHA-256, scoped to an owner; admin keys see every owner's resources."""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ApiKey
from service.errors import Unauthorized

KEY_PREFIX = "molrg_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the owner their resources belong to, and whether they may see everyone's."""

    owner: str
    is_admin: bool = False
    key_id: str | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_api_key(session: Session, *, name: str, owner: str, is_admin: bool = False) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext key (shown once, never stored)."""
    key = generate_key()
    row = ApiKey(name=name, owner=owner, key_hash=hash_key(key), prefix=key[:12], is_admin=is_admin)
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, key: str | None) -> Principal:
    """The principal of a presented key; ``Unauthorized`` if missing, unknown or revoked."""
    if not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None:
        raise Unauthorized("invalid API key")
    if row.revoked_at is not None:
        raise Unauthorized("API key revoked")
    return Principal(owner=row.owner, is_admin=row.is_admin, key_id=str(row.id))
