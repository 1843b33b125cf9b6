"""Scale-out of a sweep over worker processes, measured on PostgreSQL + Redis.

    .venv/bin/python bench/bench_sweeps.py [--workers 1 2] [--trials 20] [--chunk-fits 160]
        [--threads 1] [--json bench/results/bench_sweeps.json]

The same sweep (the paper grid n = 48, d in 2..8, N in 2..15, K = 1, diffusion, seed 0) is run on a
fresh database with 1 and then 2 worker processes (one Celery process per "device", prefork,
concurrency 1, as in production). Each worker gets ``--threads`` torch threads (OMP_NUM_THREADS),
so 2 workers use 2 cores where 1 uses one: the speed-up measures the fan-out, not intra-op
threading. Wall-clock runs from POST /api/v1/sweeps to the job's ``succeeded``. The report shows
how many chunks each worker ran. The CPU may be shared with other processes: the load is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.db.dbfixtures import drop_pg_database, port_open  # noqa: E402
from tests.sweeps.stack import SweepStack, base_env, postgres_redis_env  # noqa: E402

GRID = {"ambient_dim": 48, "n_components": 1, "dims": list(range(2, 9)), "samples": list(range(2, 16)),
        "methods": ["diffusion"], "seed": 0}


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def wait_ready(stack: SweepStack, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(" ready." in stack.log(f"worker{i}") for i in range(len(stack.workers))):
        if time.monotonic() > deadline:
            raise RuntimeError("workers not ready")
        time.sleep(0.5)


def run(n_workers: int, trials: int, chunk_fits: int, threads: int) -> dict[str, Any]:
    extra = postgres_redis_env(redis_db=12)
    extra.update({"MOLRG_SWEEP_CHUNK_FITS": str(chunk_fits), "OMP_NUM_THREADS": str(threads),
                  "MKL_NUM_THREADS": str(threads)})
    stack = SweepStack(Path(tempfile.mkdtemp(prefix=f"molrg-bench-{n_workers}w-")), base_env(extra))
    try:
        stack.start_api()
        for i in range(n_workers):
            stack.start_worker(beat=i == 0)
        wait_ready(stack)
        assert stack.client is not None
        start_load = load()
        t0 = time.perf_counter()
        job = stack.client.post("/api/v1/sweeps", json={**GRID, "trials": trials}).raise_for_status().json()
        done = stack.wait_job(job["id"], timeout=7200)
        wall = time.perf_counter() - t0
        sweep = stack.client.get(f"/api/v1/sweeps/{job['sweep_id']}").raise_for_status().json()
    finally:
        stack.stop()
        drop_pg_database(extra["MOLRG_DATABASE_URL"])
    per_worker = Counter(c["worker"].split("@")[0] for c in sweep["chunks"] if c["worker"])
    (tr,) = sweep["transitions"]
    return {"workers": n_workers, "status": done["status"], "wall_s": round(wall, 1), "n_fits": job["n_fits"],
            "chunks": sweep["progress"]["chunks_total"], "chunks_per_worker": dict(sorted(per_worker.items())),
            "n_star": {r["d"]: r["n_star"] for r in tr["rows"]}, "linear_fit": tr["linear_fit"],
            "load_before": start_load, "load_after": load()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--chunk-fits", type=int, default=160)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not (port_open("127.0.0.1", 5432) and port_open("127.0.0.1", 6379)):
        sys.exit("needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379")
    results = []
    for n in args.workers:
        r = run(n, args.trials, args.chunk_fits, args.threads)
        results.append(r)
        print(f"{n} worker(s): {r['status']} in {r['wall_s']:.1f} s, {r['n_fits']} fits in {r['chunks']} chunks, "
              f"chunks per worker {r['chunks_per_worker']}, N*(d) {r['n_star']}, load {r['load_after']}",
              flush=True)
    if len(results) >= 2:
        print(f"speed-up {results[0]['workers']} -> {results[-1]['workers']} workers: "
              f"{results[0]['wall_s'] / results[-1]['wall_s']:.2f}x")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"grid": GRID, "trials": args.trials, "chunk_fits": args.chunk_fits,
                                         "threads_per_worker": args.threads, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
