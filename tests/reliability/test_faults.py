"""Faults with real processes: the API (``molrg up --no-worker``), a Celery worker with beat (the reaper),
PostgreSQL and a redis-server of our own. Every accepted job must reach a terminal state, and here,
with transient faults only, ``succeeded`` with its model.

* Redis restarted (SIGKILL, nothing persisted: every queued message is lost) while one job runs and
  others are queued, and jobs submitted while it is down: the reaper re-publishes them.
* PostgreSQL cut (a TCP proxy in front of it stops listening and resets every connection):
  ``/health/ready`` and API requests answer 503 problem+json, and the same processes recover.
* The API process SIGKILLed and started again while jobs run: nothing is lost (on PostgreSQL + Redis and
  on the embedded default, SQLite + ``filesystem://``).
"""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.db.dbfixtures import create_pg_database, drop_pg_database, port_open
from tests.reliability.faults import RedisServer, TcpProxy
from tests.sweeps.stack import SweepStack, base_env

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TIMINGS = {"MOLRG_HEARTBEAT_INTERVAL_S": "1", "MOLRG_REAP_INTERVAL_S": "1", "MOLRG_STALE_AFTER_S": "15",
           "MOLRG_REPUBLISH_AFTER_S": "4"}
LONG_FIT = {"n_components": 2, "dims": [3, 3], "method": "diffusion", "seed": 0,
            "options": {"model": "softmax", "steps": 1000, "restarts": 1}}
QUICK_FIT = {"n_components": 2, "dims": [3, 3], "method": "subspace_clustering"}
PROBLEM = "application/problem+json"


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    url = create_pg_database("molrg_rel", migrate=False)
    yield url
    drop_pg_database(url)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path / "redis")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    server.start()
    yield server
    server.kill()


def _stack(tmp_path: Path, database_url: str, broker_url: str) -> SweepStack:
    data = tmp_path / "data"
    data.mkdir()
    env = base_env({"MOLRG_DATABASE_URL": database_url, "MOLRG_BROKER_URL": broker_url, **TIMINGS})
    stack = SweepStack(data, env)
    stack.start_api()
    stack.start_worker(beat=True)
    return stack


def _dataset(client: httpx.Client) -> str:
    body = {"name": "rel", "synthetic": {"ambient_dim": 24, "dims": [3, 3], "samples_per_component": 20, "seed": 0}}
    resp = client.post("/api/v1/datasets", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _fit(client: httpx.Client, dataset_id: str, body: dict[str, Any], seed: int = 0) -> str:
    resp = client.post("/api/v1/fits", json={"dataset_id": dataset_id, **body, "seed": seed})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _wait_status(stack: SweepStack, job_id: str, status: str, timeout: float = 90.0) -> None:
    assert stack.client is not None
    deadline = time.monotonic() + timeout
    while (now := stack.client.get(f"/api/v1/jobs/{job_id}").json()["status"]) != status:
        assert now in ("queued", "running"), f"job {job_id} is {now}, waited for {status}"
        assert time.monotonic() < deadline, f"job {job_id} not {status} after {timeout}s\n{stack.log('worker0')}"
        time.sleep(0.2)


def _all_succeed(stack: SweepStack, job_ids: list[str], timeout: float = 150.0) -> None:
    """Every job ends ``succeeded`` with exactly its model, and the owner's job list holds them all."""
    assert stack.client is not None
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    for job_id in job_ids:
        job = stack.wait_job(job_id, timeout=max(deadline - time.monotonic(), 1.0))
        print(f"{time.monotonic() - t0:6.1f}s {job_id[:8]} {job['status']} attempts={job['attempts']} "
              f"run={job['duration_s']}")
        assert job["status"] == "succeeded", job
        model = stack.client.get(f"/api/v1/models/{job['result']['model_id']}")
        assert model.status_code == 200 and model.json()["job_id"] == job_id
    listed = stack.client.get("/api/v1/jobs", params={"limit": 200}).json()["items"]
    assert {j["id"] for j in listed} == set(job_ids)
    models = stack.client.get("/api/v1/models", params={"limit": 200}).json()["items"]
    assert sorted(m["job_id"] for m in models) == sorted(job_ids)  # one model per job, no duplicates


def _use_new_key(stack: SweepStack, database_url: str) -> str:
    """A second key of the default owner, created in the database; the client sends it from now on."""
    from db.session import make_engine, make_sessionmaker, session_scope
    from service.auth import create_api_key

    engine = make_engine(database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        _row, key = create_api_key(session, name="secret", owner="local")
    engine.dispose()
    assert stack.client is not None
    stack.client.headers["Authorization"] = f"Bearer {key}"
    assert stack.client.get("/api/v1/jobs").status_code == 200
    wrong = key[:-4] + "xxxx"
    assert stack.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    return key


def _assert_key_never_logged(stack: SweepStack, key: str) -> None:
    """Neither the key (nor its hash, nor a near miss of it) is in any log of the API or the worker;
    the first-start key is printed once, by ``molrg up``'s banner, and nowhere else."""
    from service.auth import hash_key

    logs = {p.name: p.read_text(errors="replace") for p in stack.data_dir.glob("*.log")}
    assert {"api.log", "worker0.log"} <= set(logs)
    default_key = (stack.data_dir / "api-key").read_text().strip()
    for name, text in logs.items():
        for secret in (key, hash_key(key), key[:-4], default_key[12:], hash_key(default_key)):
            if secret == default_key[12:] and name == "api.log":
                assert text.count(secret) == 1 and "created API key" in text  # the banner, once
                continue
            assert secret not in text, f"a key is in {name}"


@pytest.mark.postgres
def test_redis_restart_loses_no_job(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> None:
    stack = _stack(tmp_path, pg_url, redis_server.url)
    try:
        assert stack.client is not None
        ds = _dataset(stack.client)
        jobs = [_fit(stack.client, ds, LONG_FIT)] + [_fit(stack.client, ds, QUICK_FIT, seed=s) for s in range(4)]
        _wait_status(stack, jobs[0], "running")
        redis_server.kill()  # every queued message is gone with it
        ready = stack.client.get("/health/ready")
        assert ready.status_code == 503 and ready.headers["content-type"].startswith(PROBLEM)
        assert ready.json()["checks"]["broker"].startswith("unreachable")
        # accepted while the broker is down: committed as queued, the publish fails, the reaper re-publishes
        jobs += [_fit(stack.client, ds, QUICK_FIT, seed=10 + s) for s in range(2)]
        time.sleep(1.0)
        redis_server.restart(down_s=0.0)
        jobs += [_fit(stack.client, ds, QUICK_FIT, seed=20 + s) for s in range(2)]
        _all_succeed(stack, jobs)
        assert stack.client.get("/health/ready").status_code == 200
    finally:
        stack.stop()


@pytest.mark.postgres
def test_postgres_outage_answers_503_and_recovers_without_restart(tmp_path: Path, pg_url: str,
                                                                   redis_server: RedisServer) -> None:
    proxy = TcpProxy(5432)
    proxy.restore()
    proxied = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    stack = _stack(tmp_path, proxied, redis_server.url)
    try:
        assert stack.client is not None and stack.api is not None
        api_pid, worker_pid = stack.api.pid, stack.workers[0].pid
        key = _use_new_key(stack, proxied)
        ds = _dataset(stack.client)
        jobs = [_fit(stack.client, ds, LONG_FIT)] + [_fit(stack.client, ds, QUICK_FIT, seed=s) for s in range(3)]
        _wait_status(stack, jobs[0], "running")
        proxy.cut()
        t_cut = time.monotonic()
        ready = stack.client.get("/health/ready")
        assert ready.status_code == 503 and ready.headers["content-type"].startswith(PROBLEM), ready.text
        assert ready.json()["checks"]["database"].startswith("unreachable")
        for method, path, body in [("GET", f"/api/v1/jobs/{jobs[0]}", None), ("GET", "/api/v1/jobs", None),
                                   ("POST", "/api/v1/fits", {"dataset_id": ds, **QUICK_FIT})]:
            resp = stack.client.request(method, path, json=body)
            assert resp.status_code == 503, (method, path, resp.status_code, resp.text)
            assert resp.headers["content-type"].startswith(PROBLEM)
            assert resp.json()["code"] == "database_unavailable" and resp.headers["retry-after"]
        assert time.monotonic() - t_cut < 20  # fail fast, no hanging requests
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t_cut)))
        proxy.restore()
        deadline = time.monotonic() + 20
        while stack.client.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "not ready 20 s after PostgreSQL came back"
            time.sleep(0.2)
        # the same processes, no restart
        assert stack.api.poll() is None and stack.workers[0].poll() is None
        assert (stack.api.pid, stack.workers[0].pid) == (api_pid, worker_pid)
        jobs.append(_fit(stack.client, ds, QUICK_FIT, seed=99))
        _all_succeed(stack, jobs)
        stack.stop()
        _assert_key_never_logged(stack, key)
    finally:
        stack.stop()
        proxy.close()


@pytest.mark.parametrize("backend", ["embedded", pytest.param("postgres+redis", marks=pytest.mark.postgres)])
def test_api_restart_while_jobs_run_loses_nothing(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "embedded":  # the default: SQLite + filesystem:// broker in the data directory
        database_url, broker_url = f"sqlite:///{tmp_path / 'data' / 'molrg.db'}", "filesystem://"
    else:
        database_url, broker_url = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_server").url
    stack = _stack(tmp_path, database_url, broker_url)
    try:
        assert stack.client is not None and stack.api is not None
        ds = _dataset(stack.client)
        jobs = [_fit(stack.client, ds, LONG_FIT)] + [_fit(stack.client, ds, QUICK_FIT, seed=s) for s in range(4)]
        _wait_status(stack, jobs[0], "running")
        os.killpg(stack.api.pid, signal.SIGKILL)  # no graceful shutdown
        stack.api.wait()
        stack.client.close()
        stack.start_api()
        jobs.append(_fit(stack.client, ds, QUICK_FIT, seed=42))
        _all_succeed(stack, jobs)
    finally:
        stack.stop()
