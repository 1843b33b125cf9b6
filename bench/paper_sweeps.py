"""The paper's sample-complexity grids as sweeps over HTTP, on a real stack (API + Celery workers).

    .venv/bin/python bench/paper_sweeps.py [--backend embedded|postgres+redis] [--workers 1]
        [--only K:method ...] [--trials 20] [--heatmaps docs/img] [--json out.json]

Grid (spec section 7): n = 48, d in 2..8, N (K = 1) or N_k (K = 2) in 2..15, 20 trials per cell.
One sweep per (K, method) so each method's wall-clock is its own: K = 1 with pca and diffusion,
K = 2 with subspace_clustering and diffusion (default options of molrg.lowrank.fitting). Wall-clock is from
POST /api/v1/sweeps to the job's ``succeeded`` as seen by polling, so it includes queueing, chunk
hand-out and the final report. The CPU may be shared with other processes: the load is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.db.dbfixtures import drop_pg_database  # noqa: E402
from tests.sweeps.stack import SweepStack, base_env, postgres_redis_env  # noqa: E402

PAPER = {"ambient_dim": 48, "dims": list(range(2, 9)), "samples": list(range(2, 16)),
         "samples_per": "component", "noise_std": 0.0, "orthogonal": True, "success_threshold": 0.5, "seed": 0}
RUNS = [(1, "pca"), (1, "diffusion"), (2, "subspace_clustering"), (2, "diffusion")]


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def run_one(stack: SweepStack, K: int, method: str, trials: int, timeout: float,
            options: dict[str, Any] | None = None) -> dict[str, Any]:
    assert stack.client is not None
    body = {**PAPER, "n_components": K, "trials": trials, "methods": [method],
            "method_options": {method: options} if options else {}}
    t0 = time.perf_counter()
    resp = stack.client.post("/api/v1/sweeps", json=body)
    resp.raise_for_status()
    job = resp.json()
    done = stack.wait_job(job["id"], timeout=timeout)
    wall = time.perf_counter() - t0
    sweep = stack.client.get(f"/api/v1/sweeps/{job['sweep_id']}").raise_for_status().json()
    (tr,) = sweep["transitions"]
    workers = sorted({c["worker"].split("@")[0] for c in sweep["chunks"] if c["worker"]})
    return {"K": K, "method": method, "options": options or {}, "status": done["status"], "wall_s": round(wall, 1), "n_fits": job["n_fits"],
            "chunks": sweep["progress"]["chunks_total"], "workers": workers, "sweep_id": job["sweep_id"],
            "n_star": {r["d"]: r["n_star"] for r in tr["rows"]},
            "n_star_logistic": {r["d"]: r["n_star_logistic"] for r in tr["rows"]},
            "linear_fit": tr["linear_fit"], "linear_fit_logistic": tr["linear_fit_logistic"],
            "heatmap_url": sweep["heatmaps"][0]["url"] if sweep["heatmaps"] else None, "load": load()}


def fmt(r: dict[str, Any]) -> str:
    lf = r["linear_fit"] or {}
    line = (f"N* = {lf.get('slope', float('nan')):.3f} d + {lf.get('intercept', float('nan')):.3f} "
            f"(r2 = {lf.get('r2')})") if lf else "no line"
    stars = " ".join(f"{d}:{n}" for d, n in r["n_star"].items())
    return (f"K={r['K']} {r['method']:<20} {r['status']:<9} {r['wall_s']:>7.1f} s  {r['n_fits']} fits in "
            f"{r['chunks']} chunks on {','.join(r['workers'])}\n    N*(d) {stars}\n    {line}   load {r['load']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["embedded", "postgres+redis"], default="embedded")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--only", nargs="*", default=None, help="runs as K:method, e.g. 1:pca 2:diffusion")
    p.add_argument("--heatmaps", type=Path, default=None, help="write each sweep's heatmap PNG here")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--diffusion-options", type=json.loads, default=None,
                   help='JSON options of the diffusion fits, e.g. \'{"steps": 600, "restarts": 1}\'')
    args = p.parse_args()
    runs = RUNS if not args.only else [(int(k), m) for k, m in (o.split(":") for o in args.only)]

    extra = postgres_redis_env(redis_db=11) if args.backend == "postgres+redis" else {}
    data_dir = Path(tempfile.mkdtemp(prefix="molrg-paper-"))
    stack = SweepStack(data_dir, base_env(extra))
    results = []
    try:
        stack.start_api()
        for _ in range(args.workers):
            stack.start_worker(beat=not stack.workers)
        print(f"backend {args.backend}, {args.workers} worker(s), data in {data_dir}, load {load()}", flush=True)
        for K, method in runs:
            opts = args.diffusion_options if method == "diffusion" else None
            r = run_one(stack, K, method, args.trials, args.timeout, opts)
            results.append(r)
            print(fmt(r) + (f"\n    options {opts}" if opts else ""), flush=True)
            if args.json is not None:  # after every sweep, so a long run can be stopped early
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps({"backend": args.backend, "workers": args.workers,
                                                 "runs": results}, indent=2))
            if args.heatmaps is not None and r["heatmap_url"]:
                args.heatmaps.mkdir(parents=True, exist_ok=True)
                assert stack.client is not None
                png = stack.client.get(r["heatmap_url"]).raise_for_status().content
                (args.heatmaps / f"sweep_K{K}_{method}.png").write_bytes(png)
    finally:
        stack.stop()
        if "MOLRG_DATABASE_URL" in extra:
            drop_pg_database(extra["MOLRG_DATABASE_URL"])


if __name__ == "__main__":
    main()
