"""Database fixtures shared by the test packages (schema only via migrations.upgrade_head), and the local
PostgreSQL/Redis addresses and port helpers."""

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from db.base import utcnow
from db.enums import JobKind, JobStatus
from db.models import Dataset, FittedModel, Job, MetricPoint, SampleSet
from db.session import make_engine, make_sessionmaker, session_scope
from migrations import upgrade_head

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_available() -> bool:
    if not port_open("127.0.0.1", 5432):
        return False
    try:
        eng = sa.create_engine(PG_ADMIN_URL)
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


def redis_available() -> bool:
    return port_open("127.0.0.1", 6379)


REDIS_LOCK_KEY = "molrg:test-db-lock"


def claim_redis_db(candidates: tuple[int, ...] = (15, 14, 8, 7, 6, 5, 4, 3, 2, 1)) -> str:
    """URL of an empty Redis database locked for this test run (other suites use fixed ones)."""
    import redis

    for index in candidates:
        client = redis.Redis.from_url(f"{REDIS_URL}/{index}")
        try:
            if client.dbsize() == 0 and client.set(REDIS_LOCK_KEY, str(uuid.uuid4()), nx=True, ex=1800):
                return f"{REDIS_URL}/{index}"
        finally:
            client.close()
    pytest.skip("no empty Redis database to run on")


def release_redis_db(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def create_pg_database(prefix: str = "molrg_t", migrate: bool = True) -> str:
    """A fresh PostgreSQL database, migrated to head unless ``migrate`` is False (``molrg up`` migrates
    it itself); returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    if migrate:
        upgrade_head(url)
    return url


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def create_sqlite_database(path: Path) -> str:
    url = f"sqlite:///{path}"
    upgrade_head(url)
    return url


def clear_tables(maker: sessionmaker[Session]) -> None:
    with session_scope(maker) as s:
        for model in (MetricPoint, SampleSet, FittedModel, Job, Dataset):
            s.execute(sa.delete(model))


def add_dataset(maker: sessionmaker[Session], n: int = 12, dims: tuple[int, ...] = (2,), ambient: int = 6,
                seed: int = 0, owner: str = "test") -> uuid.UUID:
    """A synthetic dataset with ground truth (numpy only: exact MoLRG data is not needed here)."""
    from workers import codec

    rng = np.random.default_rng(seed)
    bases = [np.linalg.qr(rng.standard_normal((ambient, d)))[0] for d in dims]
    per = n // len(dims)
    X = np.concatenate([rng.standard_normal((per, d)) @ U.T for d, U in zip(dims, bases, strict=True)])
    labels = np.repeat(np.arange(len(dims)), per)
    ds_id = uuid.uuid4()
    with session_scope(maker) as s:
        s.add(Dataset(id=ds_id, owner=owner, name="tiny", source="synthetic", n_samples=X.shape[0],
                      ambient_dim=ambient, spec={"dims": list(dims)}, has_ground_truth=True,
                      data_npy=codec.array_to_npy(X, np.float64), labels_npy=codec.array_to_npy(labels, np.int64),
                      bases_npz=codec.bases_to_npz(bases)))
    return ds_id


def add_job(maker: sessionmaker[Session], kind: JobKind, params: dict[str, Any], *, owner: str = "test",
            status: JobStatus = JobStatus.queued, queue: str = "gpu", max_attempts: int = 3,
            **extra: Any) -> uuid.UUID:
    job_id = uuid.uuid4()
    with session_scope(maker) as s:
        s.add(Job(id=job_id, owner=owner, kind=kind, status=status, queue=queue, params=params,
                  max_attempts=max_attempts, queued_at=utcnow(), **extra))
    return job_id


def get_job(maker: sessionmaker[Session], job_id: uuid.UUID) -> Job:
    with maker() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def fit_params(dataset_id: uuid.UUID, method: str = "pca", dims: list[int] | None = None,
               options: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    dims = dims or [2]
    return {"dataset_id": str(dataset_id), "n_components": len(dims), "dims": dims, "method": method,
            "options": options or {}, "seed": seed}


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return create_sqlite_database(tmp_path_factory.mktemp("sqlite") / "molrg.db")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not pg_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 (user postgres, db test) is not reachable")
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url"))


@pytest.fixture
def maker(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    mk = make_sessionmaker(engine)
    clear_tables(mk)
    yield mk
    clear_tables(mk)
    engine.dispose()
