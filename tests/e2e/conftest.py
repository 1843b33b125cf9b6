"""Start the real service (``molrg up``: API + Celery worker process) and drive it over HTTP."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.db.dbfixtures import (
    claim_redis_db,
    create_pg_database,
    drop_pg_database,
    free_port,
    port_open,
    release_redis_db,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    """A running service: base URL, an authenticated client, and its process."""

    url: str
    client: httpx.Client
    proc: subprocess.Popen[bytes]
    data_dir: Path
    backend: str

    def wait_job(self, job_id: str, timeout: float = 120.0, until: tuple[str, ...] = ("succeeded", "failed", "cancelled")) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
            if job["status"] in until:
                return job
            if time.monotonic() > deadline:
                log = (self.data_dir / "molrg-up.log").read_text(errors="replace")[-4000:]
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s\n{log}")
            time.sleep(0.2)


def _start(tmp: Path, backend: str, env_extra: dict[str, str]) -> Iterator[Stack]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
    env.update(env_extra)
    # Short reaper periods: a stale job is re-queued, a lost message re-published, within the test's waits.
    env.update({"MOLRG_STALE_AFTER_S": "20", "MOLRG_REAP_INTERVAL_S": "2", "MOLRG_HEARTBEAT_INTERVAL_S": "1",
                "MOLRG_REPUBLISH_AFTER_S": "15"})
    log = open(tmp / "molrg-up.log", "wb")  # noqa: SIM115
    exe = str(Path(sys.executable).parent / "molrg")
    proc = subprocess.Popen([exe, "up", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    key_file = tmp / "api-key"
    while True:
        if proc.poll() is not None:
            raise AssertionError("molrg up exited:\n" + (tmp / "molrg-up.log").read_text(errors="replace")[-4000:])
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200 and key_file.exists():
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("service not ready:\n" + (tmp / "molrg-up.log").read_text(errors="replace")[-4000:])
        time.sleep(0.3)
    key = key_file.read_text().strip()
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    try:
        yield Stack(url, client, proc, tmp, backend)
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _postgres_env(tmp: Path) -> dict[str, str]:
    return {"MOLRG_DATABASE_URL": create_pg_database("molrg_e2e", migrate=False), "MOLRG_BROKER_URL": claim_redis_db()}


@pytest.fixture(scope="session", params=["embedded", "postgres+redis"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    backend = request.param
    tmp = tmp_path_factory.mktemp(backend.replace("+", "_"))
    env: dict[str, str] = {}
    if backend == "postgres+redis":
        if not (port_open("127.0.0.1", 5432) and port_open("127.0.0.1", 6379)):
            pytest.skip("PostgreSQL at 127.0.0.1:5432 or Redis at 127.0.0.1:6379 not reachable")
        env = _postgres_env(tmp)
        try:
            yield from _start(tmp, backend, env)
        finally:
            release_redis_db(env["MOLRG_BROKER_URL"])
            drop_pg_database(env["MOLRG_DATABASE_URL"])
        return
    yield from _start(tmp, backend, env)
