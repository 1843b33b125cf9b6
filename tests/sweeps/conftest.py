"""Fixtures for the sweep tests: the migrated SQLite/PostgreSQL databases of tests/db."""

from tests.db.dbfixtures import db_url, maker, pg_url, sqlite_url  # noqa: F401
