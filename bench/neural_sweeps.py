"""The neural sample-complexity sweep (spec section 14) over HTTP, on a real stack (API + Celery workers).

    .venv/bin/python bench/neural_sweeps.py [--backend embedded|postgres+redis] [--workers 1]
        [--trials 2] [--steps 2000] [--width 256] [--figure docs/img/neural_sweep.png] [--json out.json]

Grid (the CPU-sized grid of section 14): K = 2, n = 48, d in {2, 4, 6}, N_k / d in {1, 2, 4, ..., 64}
(``samples_per: "dim_ratio"``), methods neural (mlp), empirical and diffusion (the low-rank line), and
exact (the true posterior) as the second reference. Wall-clock is from POST /api/v1/sweeps to the job's
``succeeded`` as seen by polling, so it includes queueing, the chunk hand-out and the report. The CPU may
be shared with other processes: the load average is printed.
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

GRID: dict[str, Any] = {"ambient_dim": 48, "n_components": 2, "dims": [2, 4, 6], "samples": [1, 2, 4, 8, 16, 32, 64],
                        "samples_per": "dim_ratio", "methods": ["neural", "empirical", "exact", "diffusion"],
                        "seed": 0}


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def logistic(row: dict[str, Any]) -> str:
    value = "-" if row["n_star_logistic"] is None else f"{row['n_star_logistic']:.2f}"
    status = row.get("logistic_status")
    return value if status in (None, "ok") else f"{value} {status}"


def summary(sweep: dict[str, Any]) -> list[str]:
    """Threshold ratio per d, logistic crossing and collapse of every method, and the median scores."""
    lines = []
    for tr in sweep["transitions"]:
        rows = ", ".join(f"d={r['d']}: {r['n_star']} ({logistic(r)})" for r in tr["rows"])
        col = tr.get("collapse") or {}
        lines.append(f"  {tr['method']:<10} threshold N_k/d (logistic): {rows}; collapse max/min "
                     f"{col.get('n_star_max_over_min')} (logistic {col.get('logistic_max_over_min')})")
    by = {}
    for c in sweep["cells"]:
        if c["generalisation_score"] is not None:
            by.setdefault((c["method"], c["d"]), []).append((c["samples"], c["generalisation_score"],
                                                              c["memorised_fraction"], c["on_support_fraction"]))
    for (m, d), pts in sorted(by.items()):
        lines.append(f"  {m:<10} d={d} gen/mem/on-support by N_k/d: " + "  ".join(
            f"{s}:{g:.2f}/{mm:.2f}/{o:.2f}" for s, g, mm, o in sorted(pts)))
    for c in sorted(sweep["cells"], key=lambda c: (c["d"], c["samples"])):
        for step, v in (c.get("by_step") or {}).items():
            lines.append(f"  {c['method']:<10} d={c['d']} N_k/d={c['samples']} after {step} steps: gen/mem/on-support "
                         f"{v['generalisation_score']:.2f}/{v['memorised_fraction']:.2f}/{v['on_support_fraction']:.2f}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["embedded", "postgres+redis"], default="embedded")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="neural training steps (default: the fit default)")
    p.add_argument("--width", type=int, default=None, help="mlp width (default: the fit default)")
    p.add_argument("--eval-at-steps", type=int, nargs="*", default=None,
                   help="also score the networks after these training steps")
    p.add_argument("--figure", type=Path, default=None, help="write the curves PNG here")
    p.add_argument("--heatmap", type=Path, default=None, help="write the neural heatmap PNG here")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--timeout", type=float, default=7200.0)
    args = p.parse_args()
    neural = {k: v for k, v in (("steps", args.steps), ("width", args.width)) if v is not None}
    body = {**GRID, "trials": args.trials, "method_options": {"neural": neural} if neural else {}}
    if args.eval_at_steps:
        body["eval_at_steps"] = args.eval_at_steps

    extra = postgres_redis_env(redis_db=12) if args.backend == "postgres+redis" else {}
    # the cores shared between the worker processes, as `molrg up --workers N` does
    extra["MOLRG_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.workers))
    data_dir = Path(tempfile.mkdtemp(prefix="molrg-neural-sweep-"))
    stack = SweepStack(data_dir, base_env(extra))
    try:
        stack.start_api()
        for _ in range(args.workers):
            stack.start_worker(beat=not stack.workers)
        assert stack.client is not None
        print(f"backend {args.backend}, {args.workers} worker(s) x {extra['MOLRG_TORCH_THREADS']} torch threads, "
              f"data in {data_dir}, load {load()}", flush=True)
        print(f"grid {json.dumps(body)}", flush=True)
        t0 = time.perf_counter()
        job = stack.client.post("/api/v1/sweeps", json=body).raise_for_status().json()
        done = stack.wait_job(job["id"], timeout=args.timeout)
        wall = time.perf_counter() - t0
        sweep = stack.client.get(f"/api/v1/sweeps/{job['sweep_id']}").raise_for_status().json()
        chunks = [(c["index"], c["n_fits"], c["worker"].split("@")[0] if c["worker"] else None, c["attempts"],
                   c["started_at"], c["finished_at"]) for c in sweep["chunks"]]
        per_worker: dict[str, int] = {}
        for _, _, w, _, _, _ in chunks:
            per_worker[str(w)] = per_worker.get(str(w), 0) + 1
        print(f"status {done['status']} in {wall:.1f} s wall-clock; {job['n_fits']} fits in {len(chunks)} chunks; "
              f"chunks per worker {per_worker}; load {load()}", flush=True)
        for line in summary(sweep):
            print(line, flush=True)
        result = {"backend": args.backend, "workers": args.workers, "wall_s": round(wall, 1), "status": done["status"],
                  "body": body, "chunks": chunks, "chunks_per_worker": per_worker, "load": load(),
                  "transitions": sweep["transitions"], "cells": sweep["cells"]}
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1))
        if args.figure is not None and sweep["figures"]:
            args.figure.parent.mkdir(parents=True, exist_ok=True)
            args.figure.write_bytes(stack.client.get(sweep["figures"][0]["url"]).raise_for_status().content)
        if args.heatmap is not None:
            url = next(h["url"] for h in sweep["heatmaps"] if h["method"] == "neural")
            args.heatmap.write_bytes(stack.client.get(url).raise_for_status().content)
    finally:
        stack.stop()
        if "MOLRG_DATABASE_URL" in extra:
            drop_pg_database(extra["MOLRG_DATABASE_URL"])


if __name__ == "__main__":
    main()
