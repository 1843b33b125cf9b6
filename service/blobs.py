"""Stream a stored blob (``.npy``/``.npz``/PNG column) to the client in pieces, never whole in memory.

The blob's length is read with the request's session (which also checked the caller may see the row);
the bytes are then read with ``substr`` one chunk at a time, each chunk in its own short session, so a
slow client holds neither a pooled connection nor more than one chunk while it reads.
SQLite and PostgreSQL both index BLOB/bytea ``substr`` and ``length`` in bytes.
"""

from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, Integer, LargeBinary, func, literal, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response, StreamingResponse

from service.errors import ServiceError

CHUNK_BYTES = 1024 * 1024


def blob_length(session: Session, column: Any, *where: ColumnElement[bool]) -> int | None:
    """Bytes in the blob of the row matching ``where``; None when there is no row or no blob."""
    length = session.scalar(select(func.length(column)).where(*where))
    return None if length is None else int(length)


def _chunks(maker: sessionmaker[Session], column: Any, where: tuple[ColumnElement[bool], ...],
            length: int, chunk: int) -> Iterator[bytes]:
    for offset in range(0, length, chunk):
        with maker() as session:
            piece = session.scalar(select(func.substr(column, literal(offset + 1, Integer),
                                                      literal(chunk, Integer), type_=LargeBinary)).where(*where))
        if piece is None:  # the row was deleted while it was being sent: end the body early
            return
        yield bytes(piece)


def blob_response(session: Session, maker: sessionmaker[Session], column: Any, where: tuple[ColumnElement[bool], ...],
                  missing: ServiceError, media_type: str = "application/octet-stream",
                  headers: dict[str, str] | None = None, chunk: int | None = None) -> Response:
    """The blob as a response (``missing`` raised when there is none): read at once when it fits one chunk,
    streamed chunk by chunk otherwise."""
    length = blob_length(session, column, *where)
    if length is None:
        raise missing
    chunk = chunk or CHUNK_BYTES
    headers = {**(headers or {}), "Content-Length": str(length)}
    if length <= chunk:
        payload = session.scalar(select(column).where(*where))
        return Response(bytes(payload or b""), media_type=media_type, headers=headers)
    return StreamingResponse(_chunks(maker, column, where, length, chunk), media_type=media_type, headers=headers)
