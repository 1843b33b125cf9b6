"""Reliability tests reuse the service fixtures (a migrated database, a TestClient app with a FakeQueue)."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from db.session import make_engine
from tests.service.conftest import api, db_url, make_api, pg_database, sqlite_template, sqlite_url  # noqa: F401


@pytest.fixture
def db_url_pg(pg_database: str) -> Iterator[str]:  # noqa: F811
    """The session's migrated PostgreSQL database, emptied after the test."""
    yield pg_database
    engine = make_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE metrics, sample_sets, models, jobs, datasets, api_keys CASCADE"))
    engine.dispose()
