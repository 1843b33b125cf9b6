"""Fixtures for the db tests (shared with tests/workers)."""

from tests.db.dbfixtures import db_url, maker, pg_url, sqlite_url  # noqa: F401
