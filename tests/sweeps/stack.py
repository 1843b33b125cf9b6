"""A service whose worker processes the test controls: ``molrg up --no-worker`` for the API, plus
Celery worker processes started (and SIGKILLed) here. Used by the sweep e2e tests and bench/."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from service.cli import DEFAULT_MAX_TASKS_PER_CHILD
from tests.db.dbfixtures import REDIS_URL, create_pg_database, free_port

ROOT = Path(__file__).resolve().parents[2]
def postgres_redis_env(redis_db: int = 10) -> dict[str, str]:
    """A fresh PostgreSQL database and an emptied Redis db; MOLRG_* variables pointing at them."""
    import redis

    broker = f"{REDIS_URL}/{redis_db}"
    redis.Redis.from_url(broker).flushdb()
    return {"MOLRG_DATABASE_URL": create_pg_database("molrg_sw", migrate=False), "MOLRG_BROKER_URL": broker}


@dataclass
class SweepStack:
    """The API process, its client, and the worker processes started so far."""

    data_dir: Path
    env: dict[str, str]
    url: str = ""
    api: subprocess.Popen[bytes] | None = None
    client: httpx.Client | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[Any] = field(default_factory=list)

    def start_api(self, timeout: float = 90.0) -> None:
        port = free_port()
        log = open(self.data_dir / "api.log", "wb")  # noqa: SIM115
        self._logs.append(log)
        exe = str(Path(sys.executable).parent / "molrg")
        self.api = subprocess.Popen([exe, "up", "--no-worker", "--host", "127.0.0.1", "--port", str(port),
                                     "--data-dir", str(self.data_dir)], cwd=ROOT, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        key_file = self.data_dir / "api-key"
        deadline = time.monotonic() + timeout
        while True:
            if self.api.poll() is not None:
                raise RuntimeError("API exited:\n" + self.log("api"))
            try:
                if httpx.get(self.url + "/health/live", timeout=2).status_code == 200 and key_file.exists():
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("API not ready:\n" + self.log("api"))
            time.sleep(0.3)
        key = key_file.read_text().strip()
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def start_worker(self, beat: bool = True) -> subprocess.Popen[bytes]:
        """One Celery worker process as ``molrg up`` starts it (children serve several jobs); its own
        session, so a SIGKILL of the group kills its children."""
        index = len(self.workers)
        cmd = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "gpu,cpu",
               "--pool", "prefork", "--concurrency", "1", "--max-tasks-per-child", str(DEFAULT_MAX_TASKS_PER_CHILD),
               "--without-mingle", "--without-gossip", "-l", "info", "-n", f"sweep{index}@%h"]
        if beat:
            cmd += ["-B", "-s", str(self.data_dir / f"celerybeat-schedule-{index}")]
        log = open(self.data_dir / f"worker{index}.log", "wb")  # noqa: SIM115
        self._logs.append(log)
        env = {**self.env, "MOLRG_DATA_DIR": str(self.data_dir)}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker's whole process group: no warm shutdown, no acks, no cleanup."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def wait_job(self, job_id: str, timeout: float) -> dict[str, Any]:
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                logs = "\n".join(self.log(f"worker{i}") for i in range(len(self.workers)))
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s\n{logs}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        for proc in self.workers:  # disposable: no warm shutdown waiting for a running chunk
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        if self.api is not None and self.api.poll() is None:
            os.killpg(self.api.pid, signal.SIGTERM)
        for proc in [*self.workers, *([self.api] if self.api else [])]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without any MOLRG_* of the caller, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
    env.update(extra or {})
    return env
