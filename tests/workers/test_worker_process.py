"""A REAL Celery worker subprocess (``celery -A workers.celery_app worker ... -B``) driven through the DB.

Variants: filesystem:// broker + SQLite (always), Redis + PostgreSQL (skipped when unreachable).
"""

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.enums import JobKind, JobStatus, task_name
from db.models import FittedModel, Job
from db.session import make_engine, make_sessionmaker, session_scope
from service.cli import DEFAULT_MAX_TASKS_PER_CHILD
from tests.db.dbfixtures import (
    add_dataset,
    add_job,
    claim_redis_db,
    clear_tables,
    create_pg_database,
    create_sqlite_database,
    drop_pg_database,
    fit_params,
    get_job,
    pg_available,
    redis_available,
    release_redis_db,
)
from workers.celery_app import make_celery
from workers.settings import WorkerSettings

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
TERMINAL = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
FIT_TIME_LIMIT_S = 6


@dataclass
class Backend:
    """A database + broker pair, the env a worker needs for them, and a client app to publish with."""

    name: str
    data_dir: Path
    env: dict[str, str]
    maker: sessionmaker[Session]
    settings: WorkerSettings
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    main: subprocess.Popen[bytes] | None = None

    def ensure_main(self) -> None:
        """Start the long-lived worker of this backend (shared by the tests of the module)."""
        if self.main is None or self.main.poll() is not None:
            self.main = self.start_worker("main")

    def stop_main(self) -> None:
        if self.main is not None:
            self.stop(self.main)
            self.main = None

    def publish(self, job_id: uuid.UUID, kind: JobKind = JobKind.fit) -> float:
        app = make_celery(self.settings)
        try:
            app.send_task(task_name(kind), kwargs={"job_id": str(job_id)}, queue="gpu")
        finally:
            app.close()
        return time.monotonic()

    def start_worker(self, tag: str) -> subprocess.Popen[bytes]:
        log = self.data_dir / f"worker-{tag}.log"
        cmd = [CELERY, "-A", "workers.celery_app", "worker", "-Q", "gpu,cpu", "--pool", "prefork",
               "--concurrency", "1", "--max-tasks-per-child", str(DEFAULT_MAX_TASKS_PER_CHILD), "-B", "--without-mingle",
               "--without-gossip", "-l", "info", "-n", f"{tag}-{uuid.uuid4().hex[:6]}@%h"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.workers.append(proc)
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {tag} did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def log_tail(self) -> str:
        return "\n".join(p.name + ":\n" + p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.data_dir.glob("worker-*.log")))

    def wait(self, job_id: uuid.UUID, timeout: float, until: Callable[[Job], bool] | None = None) -> Job:
        until = until or (lambda j: j.status in TERMINAL)
        deadline = time.monotonic() + timeout
        while True:
            job = get_job(self.maker, job_id)
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {job.status} after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)


def _env(data_dir: Path, database_url: str, broker_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
    env.update({
        "MOLRG_DATA_DIR": str(data_dir), "MOLRG_DATABASE_URL": database_url, "MOLRG_BROKER_URL": broker_url,
        "MOLRG_DEVICE": "cpu", "MOLRG_HEARTBEAT_INTERVAL_S": "0.5", "MOLRG_STALE_AFTER_S": "3",
        "MOLRG_REAP_INTERVAL_S": "1", "MOLRG_REPUBLISH_AFTER_S": "30",
        "MOLRG_JOB_TIME_LIMIT_S": f'{{"fit": {FIT_TIME_LIMIT_S}}}', "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    })
    return env


@pytest.fixture(scope="module", params=["filesystem+sqlite", pytest.param("redis+postgres", marks=[
    pytest.mark.postgres, pytest.mark.redis])])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    data_dir = tmp_path_factory.mktemp(request.param.replace("+", "_"))
    pg_url = None
    if request.param == "filesystem+sqlite":
        db_url, broker = create_sqlite_database(data_dir / "molrg.db"), "filesystem://"
    else:
        if not (pg_available() and redis_available()):
            pytest.skip("PostgreSQL at 127.0.0.1:5432 or Redis at 127.0.0.1:6379 not reachable")
        broker = claim_redis_db()
        pg_url = db_url = create_pg_database("molrg_wk")
    env = _env(data_dir, db_url, broker)
    settings = WorkerSettings(data_dir=data_dir, database_url=db_url, broker_url=broker)
    settings.ensure_dirs()
    engine = make_engine(db_url)
    b = Backend(request.param, data_dir, env, make_sessionmaker(engine), settings)
    try:
        yield b
    finally:
        for proc in b.workers:
            b.stop(proc)
        engine.dispose()
        if pg_url:
            drop_pg_database(pg_url)
        if broker.startswith("redis"):
            release_redis_db(broker)


@pytest.fixture
def worker(backend: Backend) -> Backend:
    """The backend with its main worker running and empty tables."""
    clear_tables(backend.maker)
    backend.ensure_main()
    return backend


def _models(maker: sessionmaker[Session], job_id: uuid.UUID) -> int:
    with maker() as s:
        return int(s.scalar(select(func.count()).select_from(FittedModel).where(FittedModel.job_id == job_id)) or 0)


def test_sigkill_mid_fit_then_reaper_requeues(backend: Backend) -> None:
    b = backend
    b.stop_main()  # nobody else may take the job before the doomed worker
    clear_tables(b.maker)
    ds = add_dataset(b.maker, n=12, dims=(2,), ambient=6)
    first = b.start_worker("doomed")
    # Long enough to be killed mid-fit (~2.5 s in the library), short enough for the second worker to finish
    # inside the 6 s time limit.
    job_id = add_job(b.maker, JobKind.fit, fit_params(ds, "diffusion", [2], {"steps": 8_000, "callback_every": 10, "tol": 1e-300}))
    b.publish(job_id)
    b.wait(job_id, 60, until=lambda j: j.status == JobStatus.running and j.progress > 0)
    b.stop(first, signal.SIGKILL)  # the whole worker: main process, pool child and beat
    assert get_job(b.maker, job_id).status == JobStatus.running
    t0 = time.monotonic()
    b.ensure_main()  # the rescuer, kept for the next test
    job = b.wait(job_id, 90)
    logger.warning("[%s] SIGKILL -> succeeded on the second worker: %.2f s", b.name, time.monotonic() - t0)
    assert job.status == JobStatus.succeeded, job.error
    assert job.attempts == 2 and _models(b.maker, job_id) == 1


def test_pca_fit_succeeds_and_cancel_and_time_limit(worker: Backend) -> None:
    b = worker
    ds = add_dataset(b.maker, n=12, dims=(2,), ambient=6)

    # 1. A small PCA fit, published by name like the service does, ends succeeded.
    job_id = add_job(b.maker, JobKind.fit, fit_params(ds, "pca", [2]))
    t0 = b.publish(job_id)
    job = b.wait(job_id, 60)
    elapsed = time.monotonic() - t0
    logger.warning("[%s] publish -> succeeded for a small pca fit: %.2f s", b.name, elapsed)
    assert job.status == JobStatus.succeeded, job.error
    assert job.attempts == 1 and _models(b.maker, job_id) == 1
    # A duplicate delivery is a no-op.
    b.publish(job_id)

    # 2. A long diffusion fit stops within seconds of a cancel request.
    long = add_job(b.maker, JobKind.fit, fit_params(ds, "diffusion", [2], {"steps": 1_000_000, "callback_every": 1, "tol": 1e-300}))
    b.publish(long)
    b.wait(long, 60, until=lambda j: j.status == JobStatus.running and j.progress > 0)
    with session_scope(b.maker) as s:
        row = s.get_one(Job, long)
        row.status, row.cancel_requested = JobStatus.cancelling, True
    t1 = time.monotonic()
    job = b.wait(long, 15)
    logger.warning("[%s] cancel -> cancelled: %.2f s", b.name, time.monotonic() - t1)
    assert job.status == JobStatus.cancelled and _models(b.maker, long) == 0

    # 3. The per-kind soft time limit fails the job and frees the worker.
    slow = add_job(b.maker, JobKind.fit, fit_params(ds, "diffusion", [2], {"steps": 1_000_000, "tol": 1e-300}))
    b.publish(slow)
    job = b.wait(slow, FIT_TIME_LIMIT_S + 40)
    assert job.status == JobStatus.failed and job.error == f"TimeLimitExceeded: time limit of {FIT_TIME_LIMIT_S} s exceeded"
    after = add_job(b.maker, JobKind.fit, fit_params(ds, "pca", [2]))
    b.publish(after)
    assert b.wait(after, 60).status == JobStatus.succeeded
    assert get_job(b.maker, job_id).attempts == 1
