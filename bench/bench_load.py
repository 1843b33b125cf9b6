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

``--scenario concurrency`` (issue 13) instead starts ``molrg up --workers 0`` (its jobs stay queued) and runs

1. **closed loop**: ``--clients`` (200) clients sending ``GET /jobs/{id}`` back to back for ``--duration`` s;
2. **streams**: ``--streams`` (100) SSE streams held open on those jobs while ``--pollers`` (50) clients poll
   ``GET /jobs/{id}`` every ~0.5 s; then the streams are all dropped at once and the API must answer at once
   and count 0 open streams (``molrg_sse_streams_open``) soon after;

with ``/health/live`` probed every 20 ms from a separate process meanwhile. It passes with 0 errors, 0 5xx and
a ``/health/live`` p99 under 100 ms.

Usage: python bench/bench_load.py [--clients 50] [--duration 30] [--think 0.5] [--jobs 1000] [--workers 2]
       [--api-workers 2] [--out FILE]
       python bench/bench_load.py --scenario concurrency [--clients 200] [--duration 20] [--streams 100]
       [--pollers 50] [--api-workers 1]
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
from tests.reliability.serving import LiveProbe  # noqa: E402

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

    def __init__(self, workers: int, api_workers: int = 1, extra_env: dict[str, str] | None = None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="molrg-load-")
        data = Path(self.tmp.name)
        self.redis = RedisServer(data / "redis")
        self.redis.start()
        self.database_url = create_pg_database("molrg_load", migrate=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
        env |= {"MOLRG_DATABASE_URL": self.database_url, "MOLRG_BROKER_URL": self.redis.url} | (extra_env or {})
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


# --- Concurrency scenarios (issue 13): a 200-client closed loop; 100 open SSE streams + 50 polling clients ---

def _tally(statuses: dict[int, int], errors: list[str], status: int, what: str) -> None:
    statuses[status] = statuses.get(status, 0) + 1
    if status >= 400:
        errors.append(f"{what}: {status}")


async def _closed_loop(url: str, key: str, job_ids: list[str], clients: int, per_client: int | None,
                       duration: float | None) -> dict[str, Any]:
    """``clients`` clients each sending ``GET /jobs/{id}`` back to back (no pause): ``per_client`` requests
    each, or for ``duration`` seconds."""
    lat: list[float] = []
    errors: list[str] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, headers={"Authorization": f"Bearer {key}"}, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        stop = time.monotonic() + duration if duration else float("inf")

        async def one_client(index: int) -> None:
            rng, sent = random.Random(index), 0
            while (per_client is None or sent < per_client) and time.monotonic() < stop:
                sent += 1
                t0 = time.perf_counter()
                try:
                    async with session.get(f"/api/v1/jobs/{rng.choice(job_ids)}") as resp:
                        await resp.read()
                    lat.append(time.perf_counter() - t0)
                    _tally(statuses, errors, resp.status, "GET /jobs/{id}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(f"{exc.__class__.__name__}: {exc}")

        t0 = time.monotonic()
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        wall = time.monotonic() - t0
    return {"clients": clients, "duration_s": round(wall, 1), "requests": len(lat) + len(errors) - sum(
        n for s, n in statuses.items() if s >= 400), "requests_per_s": round(len(lat) / wall, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())}, "errors": len(errors),
        "http_5xx": sum(n for s, n in statuses.items() if s >= 500), "error_samples": errors[:5],
        **_summary(lat), "max_ms": round(max(lat, default=float("nan")) * 1e3, 1)}


async def _open_streams(url: str, key: str, job_ids: list[str], streams: int, pollers: int, polls: int,
                        think: float) -> dict[str, Any]:
    """``streams`` SSE streams held open on unfinished jobs while ``pollers`` clients poll ``GET /jobs/{id}``
    (``polls`` each, ~Exp(think) s apart); then every stream is dropped at once (no goodbye) and the API must
    answer at once and count 0 open streams soon after."""
    headers = {"Authorization": f"Bearer {key}"}
    errors: list[str] = []
    statuses: dict[int, int] = {}
    first_event = [asyncio.Event() for _ in range(streams)]
    events_seen = [0] * streams
    stream_session = aiohttp.ClientSession(url, headers=headers, connector=aiohttp.TCPConnector(limit=streams),
                                           timeout=aiohttp.ClientTimeout(total=None, sock_read=60))

    async def one_stream(i: int) -> None:
        try:
            async with stream_session.get(f"/api/v1/jobs/{job_ids[i % len(job_ids)]}/events") as resp:
                _tally(statuses, errors, resp.status, "GET /jobs/{id}/events")
                async for line in resp.content:
                    if line.startswith(b"event:"):
                        events_seen[i] += 1
                        first_event[i].set()
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors.append(f"stream {exc.__class__.__name__}: {exc}")
        finally:
            first_event[i].set()

    t0 = time.monotonic()
    tasks = [asyncio.create_task(one_stream(i)) for i in range(streams)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first_event)), timeout=60)
    opened_s = time.monotonic() - t0
    lat: list[float] = []
    async with aiohttp.ClientSession(url, headers=headers, connector=aiohttp.TCPConnector(limit=pollers),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def poller(index: int) -> None:
            rng = random.Random(index)
            for _ in range(polls):
                await asyncio.sleep(rng.expovariate(1.0 / think))
                t1 = time.perf_counter()
                try:
                    async with session.get(f"/api/v1/jobs/{rng.choice(job_ids)}") as resp:
                        await resp.read()
                    lat.append(time.perf_counter() - t1)
                    _tally(statuses, errors, resp.status, "GET /jobs/{id}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(f"poll {exc.__class__.__name__}: {exc}")

        t1 = time.monotonic()
        await asyncio.gather(*(poller(i) for i in range(pollers)))
        poll_wall = time.monotonic() - t1
        still_open = sum(not t.done() for t in tasks)
        for task in tasks:  # the client goes away: every connection is dropped at once
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stream_session.close()
        t2 = time.perf_counter()
        async with session.get(f"/api/v1/jobs/{job_ids[0]}") as resp:
            await resp.read()
            _tally(statuses, errors, resp.status, "GET /jobs/{id} after the streams dropped")
        first_answer_ms = (time.perf_counter() - t2) * 1e3
        gauge, deadline = None, time.monotonic() + 15
        while time.monotonic() < deadline:
            async with session.get("/metrics") as resp:
                text = await resp.text()
            gauge = next((float(line.split()[-1]) for line in text.splitlines()
                          if line.startswith("molrg_sse_streams_open")), None)
            if gauge == 0:
                break
            await asyncio.sleep(0.1)
        closed_s = time.perf_counter() - t2
    return {"streams": streams, "opened_s": round(opened_s, 2), "streams_open_at_end": still_open,
            "events_per_stream_min": min(events_seen), "pollers": pollers, "polls": len(lat),
            "poll_wall_s": round(poll_wall, 1), "polls_per_s": round(len(lat) / poll_wall, 1), **_summary(lat),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "errors": len(errors),
            "http_5xx": sum(n for s, n in statuses.items() if s >= 500), "error_samples": errors[:5],
            "after_drop_first_answer_ms": round(first_answer_ms, 1), "after_drop_streams_gauge": gauge,
            "after_drop_gauge_zero_s": round(closed_s, 2)}


def run_concurrency(clients: int = 200, per_client: int | None = None, duration: float | None = 20.0,
                    streams: int = 100, pollers: int = 50, polls: int = 40, think: float = 0.5,
                    api_workers: int = 1, n_jobs: int = 20, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Both scenarios against ``molrg up --workers 0`` (the jobs stay queued, so their streams stay open);
    ``env``: more ``MOLRG_*`` settings for the service."""
    service = Service(0, api_workers, {"MOLRG_MAX_STREAMS_PER_OWNER": str(max(streams, 1))} | (env or {}))
    try:
        with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.key}"},
                          timeout=30) as client:
            ds = client.post("/api/v1/datasets", json={"name": "load", "synthetic": {
                "ambient_dim": 16, "dims": [3], "n_samples": 12, "seed": 0}}).raise_for_status().json()
            job_ids = [client.post("/api/v1/fits", json={"dataset_id": ds["id"], **FIT, "seed": s})
                       .raise_for_status().json()["id"] for s in range(n_jobs)]
        report: dict[str, Any] = {"backend": "postgresql+redis", "api_workers": api_workers, "env": env or {},
                                  "cpus": os.cpu_count(),
                                  "loadavg_before": os.getloadavg()[0]}
        probe = LiveProbe(service.url)
        report["closed_loop"] = asyncio.run(_closed_loop(service.url, service.key, job_ids, clients, per_client,
                                                         duration))
        report["closed_loop"]["health_live"] = probe.stop()
        if streams:
            probe = LiveProbe(service.url)
            report["streams"] = asyncio.run(_open_streams(service.url, service.key, job_ids, streams, pollers,
                                                          polls, think))
            report["streams"]["health_live"] = probe.stop()
        report["loadavg_after"] = os.getloadavg()[0]
        return report
    finally:
        service.close()


def concurrency_failures(report: dict[str, Any], live_p99_ms: float = 100.0) -> list[str]:
    """What the acceptance criteria (0 errors, 0 5xx, /health/live p99 < 100 ms) say is wrong, if anything."""
    bad = []
    for name in ("closed_loop", "streams"):
        part = report.get(name)
        if part is None:
            continue
        if part["errors"] or part["http_5xx"]:
            bad.append(f"{name}: {part['errors']} errors, {part['http_5xx']} 5xx: {part['error_samples']}")
        live = part["health_live"]
        if live["errors"] or not live["p99_ms"] < live_p99_ms:
            bad.append(f"{name}: /health/live p99 {live['p99_ms']} ms, {live['errors']} errors")
    streams = report.get("streams")
    if streams and (streams["streams_open_at_end"] != streams["streams"] or streams["after_drop_streams_gauge"] != 0):
        bad.append(f"streams: {streams['streams_open_at_end']} open at the end, "
                   f"{streams['after_drop_streams_gauge']} still counted after the client dropped them")
    return bad


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
    parser.add_argument("--scenario", choices=("mix", "concurrency"), default="mix",
                        help="mix: the load mix + drain above; concurrency: a closed loop of --clients (200) "
                             "clients, then --streams SSE streams held open while --pollers clients poll")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--pollers", type=int, default=50)
    args = parser.parse_args()
    if args.scenario == "concurrency":
        report = run_concurrency(args.clients, duration=args.duration, streams=args.streams, pollers=args.pollers,
                                 api_workers=args.api_workers)
        text = json.dumps(report, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        failures = concurrency_failures(report)
        print("\n".join(failures) or "concurrency: 0 errors, 0 5xx, /health/live p99 < 100 ms")
        raise SystemExit(1 if failures else 0)
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
