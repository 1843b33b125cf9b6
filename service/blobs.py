"""Stream a stored blob (``.npy``/``.npz``/PNG column) to the client in pieces, never whole in memory.

The blob's length is read with the request's session (which also checked the caller may see the row);
the bytes are then read one chunk at a time, each chunk in its own short session, so a slow client holds
neither a pooled connection nor more than one chunk while it reads: PostgreSQL slices the bytea with
``substr``; SQLite reads the chunk through incremental blob I/O (its ``substr`` loads the whole blob).
"""

from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, Integer, LargeBinary, func, literal, literal_column, select
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
            if session.get_bind().dialect.name == "sqlite":
                piece = _sqlite_piece(session, column, where, offset, chunk)
            else:
                piece = session.scalar(select(func.substr(column, literal(offset + 1, Integer),
                                                          literal(chunk, Integer), type_=LargeBinary)).where(*where))
        if piece is None:  # the row was deleted while it was being sent: end the body early
            return
        yield bytes(piece)


def _sqlite_piece(session: Session, column: Any, where: tuple[ColumnElement[bool], ...], offset: int,
                  chunk: int) -> bytes | None:
    """SQLite's ``substr`` loads the whole blob for every piece: read it through incremental blob I/O."""
    import sqlite3

    rowid = session.scalar(select(literal_column("rowid")).where(*where))  # FROM: the table of `where`
    if rowid is None:
        return None
    col = column.property.columns[0]
    raw: Any = session.connection().connection.driver_connection
    try:
        with raw.blobopen(col.table.name, col.name, rowid, readonly=True) as blob:
            blob.seek(offset)
            piece: bytes = blob.read(chunk)
            return piece
    except sqlite3.Error:  # deleted or rewritten meanwhile
        return None


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
