"""Job overhead a user feels: time from POST /api/v1/fits to `succeeded` for a small pca fit.

Starts `molrg up` (API + real Celery worker) on the embedded default (SQLite + filesystem
broker) and on PostgreSQL + Redis, submits small fits one after another and reports the
latency distribution. Usage: python bench/bench_service.py [--fits 10] [--backend embedded|postgres|both]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data_dir: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")} | env_extra
    log = open(data_dir / "molrg-up.log", "wb")  # noqa: SIM115
    exe = str(Path(sys.executable).parent / "molrg")
    proc = subprocess.Popen([exe, "up", "--port", str(port), "--data-dir", str(data_dir)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200 and (data_dir / "api-key").exists():
                return proc, url, (data_dir / "api-key").read_text().strip()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("service did not become ready; see " + str(data_dir / "molrg-up.log"))


def _measure(url: str, key: str, fits: int) -> list[float]:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    ds = client.post("/api/v1/datasets", json={"name": "bench", "synthetic": {"ambient_dim": 48, "dims": [4], "n_samples": 10}})
    ds.raise_for_status()
    latencies = []
    for i in range(fits + 1):
        t0 = time.perf_counter()
        job = client.post("/api/v1/fits", json={"dataset_id": ds.json()["id"], "n_components": 1, "dims": [4],
                                                "method": "pca", "seed": i}).json()
        while (status := client.get(f"/api/v1/jobs/{job['id']}").json()["status"]) not in ("succeeded", "failed"):
            time.sleep(0.02)
        if status != "succeeded":
            job_id = job["id"]
            raise SystemExit(f"fit failed: {client.get(f'/api/v1/jobs/{job_id}').json()}")
        if i > 0:  # the first fit warms the worker up; not counted
            latencies.append(time.perf_counter() - t0)
    return latencies


def run(backend: str, fits: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env: dict[str, str] = {}
        if backend == "postgres":
            name = f"molrg_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            env = {"MOLRG_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                   "MOLRG_BROKER_URL": "redis://127.0.0.1:6379/10"}
        proc, url, key = _start(Path(tmp), env)
        try:
            lat = _measure(url, key, fits)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        lat.sort()
        print(f"{backend:>9}: {fits} pca fits (n=48, d=4, N=10), POST /fits -> succeeded: "
              f"median {statistics.median(lat):.2f} s, min {lat[0]:.2f} s, max {lat[-1]:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fits", type=int, default=10)
    parser.add_argument("--backend", choices=["embedded", "postgres", "both"], default="both")
    args = parser.parse_args()
    for backend in (["embedded", "postgres"] if args.backend == "both" else [args.backend]):
        run(backend, args.fits)


if __name__ == "__main__":
    main()
