"""Service test fixtures: a migrated database (SQLite always, PostgreSQL when reachable), a TestClient
with the job queue replaced by a FakeQueue that records sends (and whether the job was committed)."""

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from db.models import Job
from db.session import make_engine, make_sessionmaker, session_scope
from migrations import upgrade_head
from service.auth import create_api_key
from service.deps import get_queue
from service.main import create_app
from service.queue import JobQueue, PendingTask
from service.settings import ServiceSettings
from tests.db.dbfixtures import create_pg_database, drop_pg_database, pg_available


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (migrations run once)."""
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    upgrade_head(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    reason = None if pg_available() else "PostgreSQL at 127.0.0.1:5432 unreachable"
    if reason:
        pytest.skip(reason)
    url = create_pg_database("molrg_svc")
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated database: a fresh SQLite copy, or the session's PostgreSQL database emptied after the test."""
    if request.param == "sqlite":
        path = tmp_path / "molrg.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("pg_database")
    yield url
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE metrics, sample_sets, models, jobs, datasets, api_keys CASCADE"))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "molrg.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@dataclass
class Sent:
    name: str
    job_id: str
    queue: str
    committed: bool  # the job row was visible to another session when the send happened


class FakeQueue(JobQueue):
    """Records sends instead of publishing; checks from a separate session that the job was committed."""

    def __init__(self, maker: sessionmaker[Session], log: list[Sent]) -> None:
        super().__init__(None)
        self._maker = maker
        self._log = log

    def send(self, task: PendingTask) -> None:
        with self._maker() as other:
            committed = other.get(Job, uuid.UUID(task.job_id)) is not None
        self._log.append(Sent(task.name, task.job_id, task.queue, committed))


@dataclass
class Api:
    client: TestClient
    settings: ServiceSettings
    maker: sessionmaker[Session]
    sent: list[Sent] = field(default_factory=list)

    def key(self, owner: str = "alice", admin: bool = False) -> dict[str, str]:
        with session_scope(self.maker) as s:
            _row, key = create_api_key(s, name="test", owner=owner, is_admin=admin)
        return {"Authorization": f"Bearer {key}"}

    def add(self, *rows: Any) -> None:
        with session_scope(self.maker) as s:
            s.add_all(rows)


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Build an app over ``url`` with settings overrides; the queue is a FakeQueue."""
    stack: list[tuple[TestClient, Any]] = []

    def build(url: str, **overrides: Any) -> Api:
        settings = ServiceSettings(data_dir=tmp_path / "data", database_url=url, **overrides)
        app = create_app(settings)
        client = TestClient(app)
        client.__enter__()
        engine = make_engine(url)
        maker = make_sessionmaker(engine)
        api = Api(client, settings, maker)
        app.dependency_overrides[get_queue] = lambda: FakeQueue(maker, api.sent)
        stack.append((client, engine))
        return api

    yield build
    for client, engine in stack:
        client.__exit__(None, None, None)
        engine.dispose()


@pytest.fixture
def api(make_api: Callable[..., Api], db_url: str) -> Api:
    return make_api(db_url)


@pytest.fixture
def sapi(make_api: Callable[..., Api], sqlite_url: str) -> Api:
    """SQLite only (for tests whose logic does not depend on the database)."""
    return make_api(sqlite_url)
