"""Fixtures for the worker tests: the same migrated databases as tests/db."""

from tests.db.dbfixtures import db_url, maker, pg_url, sqlite_url  # noqa: F401
