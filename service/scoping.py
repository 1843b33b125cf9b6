"""Owner scoping: every read and write is filtered by the caller's owner (admins see all)."""

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service import wrong_kind
from service.auth import Principal
from service.errors import NotFound

Row = TypeVar("Row")
API = "/api/v1"


def visible(stmt: Select[Any], entity: Any, principal: Principal) -> Select[Any]:
    return stmt if principal.is_admin else stmt.where(entity.owner == principal.owner)


def get_visible(session: Session, entity: type[Row], ident: uuid.UUID, principal: Principal, label: str,
                *options: Any) -> Row:
    """The row if it exists and the caller may see it; otherwise ``NotFound`` (no existence leak)."""
    stmt = visible(select(entity).where(entity.id == ident), entity, principal)  # type: ignore[attr-defined]
    if options:
        stmt = stmt.options(*options)
    row = session.scalar(stmt)
    if row is None:
        error = NotFound(label, ident)
        if (hint := wrong_kind.describe(session, principal, ident, entity)) is not None:
            error.detail = f"{error.detail}: {hint}"  # e.g. "<id> is a fit job; its model is <model id>"
        raise error
    return row
