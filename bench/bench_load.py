"""Load on loopback: concurrent clients mixing job submissions, status polls and listings, then a drain.

Starts the real service on PostgreSQL + a private redis-server (``molrg up --workers W --api-workers A``:
A API processes and W Celery worker processes), then

1. **load**: ``--clients`` asyncio clients (aiohttp) for ``--duration`` seconds, each looping over a mix
   of 10 % ``POST /fits`` (small ``pca`` fits; ``--write-fraction``), 60 % ``GET /jobs/{id}`` and 30 %
   ``GET /jobs?limit=20``, pausing ~Exp(``--think``) seconds between requests like a polling client
   (0.5 s is ``molrg_client``'s poll interval; ``--think 0`` is a closed loop that measures capacity);
   the jobs submitted run on the workers meanwhile;
   reports requests/s, p50/p99 latency (all, reads, writes) and errors (any non-2xx or exception);
2. **drain**: submits ``--jobs`` more small fits as fast as it can and waits until every job in the
   database (these and the load phase's) is ``succeeded``; reports the submit and drain times.

Usage: python bench/bench_load.py [--clients 50] [--duration 30] [--think 0.5] [--jobs 1000] [--workers 2]
       [--api-workers 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.db.dbfixtures import create_pg_database, drop_pg_database, free_port  # noqa: E402
from tests.reliability.faults import RedisServer  # noqa: E402

FIT = {"n_components": 1, "dims": [3], "method": "pca"}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _summary(lat: list[float]) -> dict[str, float]:
    return {"n": len(lat), "p50_ms": round(_pct(lat, 0.50) * 1e3, 1), "p99_ms": round(_pct(lat, 0.99) * 1e3, 1)}


class Service:
    """``molrg up`` on a fresh PostgreSQL database and a private Redis; stopped by ``close``."""

    def __init__(self, workers: int, api_workers: int = 1) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="molrg-load-")
        data = Path(self.tmp.name)
        self.redis = RedisServer(data / "redis")
        self.redis.start()
        self.database_url = create_pg_database("molrg_load", migrate=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
        env |= {"MOLRG_DATABASE_URL": self.database_url, "MOLRG_BROKER_URL": self.redis.url}
        port = free_port()
        self.log_path = data / "molrg-up.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        exe = str(Path(sys.executable).parent / "molrg")
        self.proc = subprocess.Popen([exe, "up", "--port", str(port), "--data-dir", str(data / "data"),
                                      "--workers", str(workers), "--api-workers", str(api_workers)], cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        key_file = data / "data" / "api-key"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200 and key_file.exists():
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("service did not start:\n" + self.log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        self.key = key_file.read_text().strip()
        self.engine = sa.create_engine(self.database_url)

    def status_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, count(*) FROM jobs GROUP BY status")).all()
        return {str(s): int(n) for s, n in rows}

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        if hasattr(self, "engine"):
            self.engine.dispose()
        self.redis.kill()
        drop_pg_database(self.database_url)
        self.tmp.cleanup()


async def _load(url: str, key: str, dataset_id: str, seed_jobs: list[str], clients: int,
                duration: float, write_fraction: float, think: float) -> dict[str, Any]:
    """``clients`` concurrent clients; each pauses ~Exp(think) seconds between requests (0: closed loop)."""
    reads: list[float] = []
    writes: list[float] = []
    errors: list[str] = []
    job_ids = list(seed_jobs)
    # aiohttp, not httpx: the generator shares the 2 cores with the server, and httpx spent ~1.6x the
    # server's CPU per request (measured), so it, not the API, set the latencies.
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, headers={"Authorization": f"Bearer {key}"}, connector=connector,
                                     timeout=timeout) as session:
        stop = time.monotonic() + duration

        async def one_client(index: int) -> None:
            rng = random.Random(index)
            if think > 0:
                await asyncio.sleep(rng.uniform(0, think))  # spread the first requests
            while time.monotonic() < stop:
                r = rng.random()
                t0 = time.perf_counter()
                try:
                    if r < write_fraction:
                        body = {"dataset_id": dataset_id, **FIT, "seed": rng.randrange(10**9)}
                        async with session.post("/api/v1/fits", json=body) as resp:
                            payload = await resp.json(content_type=None)
                        if resp.status == 202:
                            job_ids.append(payload["id"])
                        bucket = writes
                    else:
                        path = (f"/api/v1/jobs/{rng.choice(job_ids)}"
                                if r < write_fraction + (1 - write_fraction) * 2 / 3 else "/api/v1/jobs?limit=20")
                        async with session.get(path) as resp:
                            await resp.read()
                        bucket = reads
                    elapsed = time.perf_counter() - t0
                    if resp.status >= 400:
                        errors.append(f"{resp.method} {resp.url.path}: {resp.status}")
                    else:
                        bucket.append(elapsed)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(f"{exc.__class__.__name__}: {exc}")
                if think > 0:
                    await asyncio.sleep(rng.expovariate(1.0 / think))

        t0 = time.monotonic()
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        wall = time.monotonic() - t0
    total = len(reads) + len(writes) + len(errors)
    return {"clients": clients, "think_s": think, "duration_s": round(wall, 1), "requests": total,
            "requests_per_s": round(total / wall, 1), "errors": len(errors), "error_samples": errors[:5],
            "all": _summary(reads + writes), "reads": _summary(reads), "writes": _summary(writes),
            "jobs_submitted": len(job_ids) - len(seed_jobs)}


async def _submit_many(url: str, key: str, dataset_id: str, n: int, concurrency: int = 10) -> list[str]:
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        queue = list(range(n))

        async def worker() -> None:
            while queue:
                seed = queue.pop()
                resp = await client.post("/api/v1/fits", json={"dataset_id": dataset_id, **FIT, "seed": seed})
                resp.raise_for_status()
                ids.append(resp.json()["id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


def run(clients: int = 50, duration: float = 30.0, jobs: int = 1000, workers: int = 2,
        drain_timeout: float = 1800.0, write_fraction: float = 0.10, think: float = 0.5,
        api_workers: int = 2) -> dict[str, Any]:
    service = Service(workers, api_workers)
    try:
        client = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.key}"}, timeout=30)
        ds = client.post("/api/v1/datasets", json={"name": "load", "synthetic": {
            "ambient_dim": 16, "dims": [3], "n_samples": 12, "seed": 0}}).raise_for_status().json()
        seed_jobs = [client.post("/api/v1/fits", json={"dataset_id": ds["id"], **FIT, "seed": s}).raise_for_status()
                     .json()["id"] for s in range(3)]
        client.close()
        report: dict[str, Any] = {"backend": "postgresql+redis", "workers": workers, "api_workers": api_workers,
                                  "write_fraction": write_fraction, "cpus": os.cpu_count()}
        report["load"] = asyncio.run(_load(service.url, service.key, ds["id"], seed_jobs, clients, duration,
                                          write_fraction, think))
        print(json.dumps({"load": report["load"]}), file=sys.stderr, flush=True)  # before the long drain
        t0 = time.monotonic()
        asyncio.run(_submit_many(service.url, service.key, ds["id"], jobs))
        submitted = time.monotonic() - t0
        deadline = t0 + drain_timeout
        while True:
            counts = service.status_counts()
            active = sum(n for s, n in counts.items() if s in ("queued", "running", "cancelling"))
            if active == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        total = sum(counts.values())
        report["drain"] = {"jobs": jobs, "submit_s": round(submitted, 1), "drain_s": round(time.monotonic() - t0, 1),
                           "total_jobs": total, "statuses": counts,
                           "all_succeeded": counts.get("succeeded", 0) == total}
        return report
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=1000, help="small fits queued for the drain phase (0: none)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--api-workers", type=int, default=2, help="API server processes (molrg up --api-workers)")
    parser.add_argument("--think", type=float, default=0.5,
                        help="mean pause of a client between requests, s (0: closed loop, measures capacity)")
    parser.add_argument("--write-fraction", type=float, default=0.10, help="share of POST /fits in the load mix")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = parser.parse_args()
    report = run(args.clients, args.duration, args.jobs, args.workers, write_fraction=args.write_fraction,
                 think=args.think, api_workers=args.api_workers)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    load, drain = report["load"], report["drain"]
    print(f"\nload: {load['clients']} clients (think {load['think_s']} s) x {load['duration_s']} s: "
          f"{load['requests_per_s']} req/s, "
          f"p50 {load['all']['p50_ms']} ms, p99 {load['all']['p99_ms']} ms (reads p99 {load['reads']['p99_ms']} ms), "
          f"{load['errors']} errors")
    print(f"drain: {drain['total_jobs']} jobs, all succeeded: {drain['all_succeeded']}, "
          f"submit {drain['submit_s']} s, drained after {drain['drain_s']} s")
    if load["errors"] or not drain["all_succeeded"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
