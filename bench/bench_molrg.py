"""Benchmark the batched MoLRG sweeps on this machine (spec sections 7, 11).

    .venv/bin/python bench/bench_molrg.py [--quick] [--skip-softmax] [--device cpu|cuda] [--json out.json]

(a) K=1 diffusion paper grid (linear model, exact loss, 2000 steps), target < 60 s for 1960 fits;
(b) K=2 soft-max Monte-Carlo diffusion grid, target < 10 min;
(c) K-subspaces K=2 paper grid, target < 10 s;
(d) speed-up of the batched path over a per-fit Python loop (same fit_batched code, B = 1, on a
    subset; extrapolated to the grid and labelled as such), target >= 20x;
(e) achieved FLOP/s of the batched K=1 diffusion fit (analytic matmul FLOPs per step) against
    a large float32 torch.matmul on the same machine.
All wall times include data generation and metrics unless said otherwise. The CPU may be shared
with other processes: timings are noisy, and the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import torch

from molrg.data.synthetic import sample_molrg_batch
from molrg.lowrank.fitting import fit_batched
from molrg.sweeps.grid import SweepGrid
from molrg.sweeps.run import run_sweep

PAPER = {"ambient_dims": [48], "dims": list(range(2, 9)), "samples": list(range(2, 16))}
DIFF_OPTS = {"steps": 2000, "retraction": "polar"}


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _sweep(grid: SweepGrid, device: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    report = run_sweep(grid, device=device)
    return time.perf_counter() - t0, report


def _rate(report: Any, method: str) -> float:
    cells = [c for c in report.cells if c.method == method]
    return sum(c.successes for c in cells) / max(1, sum(c.trials for c in cells))


def bench_k1_diffusion(trials: int, device: str, steps: int) -> dict[str, Any]:
    """(a) the K=1 diffusion grid, exact loss."""
    g = SweepGrid(**PAPER, n_components=[1], samples_per="total", trials=trials, methods=["diffusion"],
                  method_options={"diffusion": {**DIFF_OPTS, "steps": steps}}, seed=1)
    wall, rep = _sweep(g, device)
    return {"fits": g.n_fits, "steps": steps, "wall_s": wall, "fit_s": rep.total_fit_seconds,
            "success": _rate(rep, "diffusion"), "target_s": 60.0 * g.n_fits / 1960}


def bench_softmax(trials: int, device: str, steps: int) -> dict[str, Any]:
    """(b) the K=2 soft-max Monte-Carlo grid (random init, 1 restart)."""
    opts = {"model": "softmax", "init": "random", "restarts": 1, "steps": steps, "retraction": "polar"}
    g = SweepGrid(**PAPER, n_components=[2], samples_per="component", trials=trials, methods=["diffusion"],
                  method_options={"diffusion": opts}, seed=2)
    wall, rep = _sweep(g, device)
    return {"fits": g.n_fits, "steps": steps, "wall_s": wall, "fit_s": rep.total_fit_seconds,
            "success": _rate(rep, "diffusion"), "target_s": 600.0 * g.n_fits / 1960}


def bench_ksubspaces(trials: int, device: str) -> dict[str, Any]:
    """(c) the K=2 K-subspaces grid (fitting.py defaults)."""
    g = SweepGrid(**PAPER, n_components=[2], samples_per="component", trials=trials,
                  methods=["subspace_clustering"], seed=2)
    wall, rep = _sweep(g, device)
    return {"fits": g.n_fits, "wall_s": wall, "fit_s": rep.total_fit_seconds,
            "success": _rate(rep, "subspace_clustering"), "target_s": 10.0 * g.n_fits / 1960}


def bench_loop_speedup(device: str, steps: int, n_loop: int, batched_grid_s: float, grid_fits: int) -> dict[str, Any]:
    """(d) per-fit loop (B = 1) vs one batched call on the same 28 fits (d = 5, N = 2..15, 2 trials)."""
    d, Ns, trials = 5, list(range(2, 16)), 2
    Xs, nv = [], []
    for N in Ns:
        b = sample_molrg_batch([1000 * N + t for t in range(trials)], 48, [d], n_samples=N, device=device)
        Xs.append(torch.nn.functional.pad(b.X, (0, 0, 0, max(Ns) - N)))
        nv += [N] * trials
    X = torch.cat(Xs)
    opts = {**DIFF_OPTS, "steps": steps}
    t0 = time.perf_counter()
    fit_batched(X, [d], "diffusion", seed=0, device=device, n_valid=torch.tensor(nv), **opts)
    batched = time.perf_counter() - t0
    idx = list(range(0, X.shape[0], max(1, X.shape[0] // n_loop)))[:n_loop]
    t0 = time.perf_counter()
    for i in idx:
        fit_batched(X[i : i + 1, : nv[i]], [d], "diffusion", seed=0, device=device, **opts)
    loop_per_fit = (time.perf_counter() - t0) / len(idx)
    return {
        "fits": X.shape[0], "steps": steps, "batched_s": batched, "batched_per_fit_s": batched / X.shape[0],
        "loop_fits_timed": len(idx), "loop_per_fit_s": loop_per_fit,
        "speedup_same_work": loop_per_fit * X.shape[0] / batched,
        "grid_loop_extrapolated_s": loop_per_fit * grid_fits,
        "speedup_vs_grid": loop_per_fit * grid_fits / batched_grid_s if batched_grid_s > 0 else None,
    }


def matmul_flops(device: str, size: int = 2048, reps: int = 5) -> float:
    """Measured float32 matmul throughput (FLOP/s) of one large square product."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.matmul(a, b)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    if device == "cuda":
        torch.cuda.synchronize()
    return 2.0 * size**3 * reps / (time.perf_counter() - t0)


def k1_step_flops(n: int, d: int, n_rows: int) -> float:
    """Matmul FLOPs of one K=1 Riemannian-Adam step with polar retraction, one trial.

    loss/grad: X U and X^T (X U) -> 4 N n d; three tangent projections (U^T G, U sym(.)) -> 12 n d^2;
    polar retraction: Y^T Y and Y (Y^T Y)^{-1/2} -> 4 n d^2 (+ O(d^3) eigendecomposition, ignored).
    """
    return 4.0 * n_rows * n * d + 16.0 * n * d * d


def bench_flops(device: str, steps: int, trials: int) -> dict[str, Any]:
    """(e) achieved FLOP/s of the batched K=1 fit over the grid's d groups (rows padded to N = 15)."""
    total_flops, total_s, useful = 0.0, 0.0, 0.0
    for d in PAPER["dims"]:
        Xs, nv = [], []
        for N in PAPER["samples"]:
            b = sample_molrg_batch([7 * N + t for t in range(trials)], 48, [d], n_samples=N, device=device)
            Xs.append(torch.nn.functional.pad(b.X, (0, 0, 0, 15 - N)))
            nv += [N] * trials
        X = torch.cat(Xs).to(torch.float32)
        t0 = time.perf_counter()
        fit = fit_batched(X, [d], "diffusion", seed=0, device=device, n_valid=torch.tensor(nv),
                          **{**DIFF_OPTS, "steps": steps, "tol": 1e-30})
        total_s += time.perf_counter() - t0
        ran = int(fit.info["steps_run"])
        total_flops += ran * X.shape[0] * k1_step_flops(48, d, 15)
        useful += ran * sum(k1_step_flops(48, d, N) for N in nv)
    peak = matmul_flops(device)
    return {"steps": steps, "fits": len(PAPER["dims"]) * len(PAPER["samples"]) * trials, "seconds": total_s,
            "achieved_flops": total_flops / total_s, "useful_flops": useful / total_s,
            "matmul_peak_flops": peak, "fraction_of_peak": total_flops / total_s / peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials/steps; numbers labelled")
    ap.add_argument("--skip-softmax", action="store_true")
    ap.add_argument("--softmax-trials", type=int, default=None,
                    help="trials for (b) (default 20, quick 1); the target scales with the fits run")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    q = args.quick
    dev = args.device
    print(f"bench_molrg  device={dev}  torch {torch.__version__}  threads={torch.get_num_threads()}  "
          f"cpus={os.cpu_count()}  {platform.processor() or platform.machine()}  "
          f"mode={'quick' if q else 'full'}  load avg at start: {_load()}")
    print("NOTE: the CPU is shared with other processes; timings are noisy (see load averages).")
    out: dict[str, Any] = {"device": dev, "threads": torch.get_num_threads(), "quick": q}
    rows: list[tuple[str, str, str, str, str]] = []

    a = bench_k1_diffusion(5 if q else 20, dev, 2000)
    out["a_k1_diffusion"] = a
    rows.append(("(a) K=1 diffusion grid, exact loss", f"{a['fits']} fits x {a['steps']} steps",
                 f"{a['wall_s']:.1f} s", f"< {a['target_s']:.0f} s", f"success {a['success']:.2f}"))
    print(f"(a) done {a['wall_s']:.1f} s, load {_load()}", flush=True)
    if not args.skip_softmax:
        sm_trials = args.softmax_trials or (1 if q else 20)
        b = bench_softmax(sm_trials, dev, 300 if q else 1000)
        out["b_softmax"] = b
        rows.append(("(b) K=2 soft-max MC grid, random init", f"{b['fits']} fits x {b['steps']} steps",
                     f"{b['wall_s']:.1f} s", f"< {b['target_s']:.0f} s", f"success {b['success']:.2f}"))
        print(f"(b) done {b['wall_s']:.1f} s, load {_load()}", flush=True)
    c = bench_ksubspaces(20, dev)
    out["c_ksubspaces"] = c
    rows.append(("(c) K=2 K-subspaces grid", f"{c['fits']} fits", f"{c['wall_s']:.1f} s",
                 f"< {c['target_s']:.0f} s", f"success {c['success']:.2f}"))
    print(f"(c) done {c['wall_s']:.1f} s, load {_load()}", flush=True)
    d = bench_loop_speedup(dev, 2000, 4 if q else 8, a["wall_s"], a["fits"])
    out["d_speedup"] = d
    rows.append(("(d) batched vs per-fit loop, same 28 fits", f"loop {d['loop_fits_timed']} timed",
                 f"{d['speedup_same_work']:.1f}x", ">= 20x",
                 f"loop {d['loop_per_fit_s'] * 1e3:.0f} ms/fit, batched {d['batched_per_fit_s'] * 1e3:.1f} ms/fit"))
    if d["speedup_vs_grid"] is not None:
        rows.append(("(d') grid (a): loop extrapolated / measured", f"{a['fits']} fits",
                     f"{d['speedup_vs_grid']:.1f}x", ">= 20x",
                     f"loop ~{d['grid_loop_extrapolated_s']:.0f} s (extrapolated) vs {a['wall_s']:.1f} s"))
    print(f"(d) done, load {_load()}", flush=True)
    e = bench_flops(dev, 500 if q else 2000, 5 if q else 20)
    out["e_flops"] = e
    rows.append(("(e) K=1 fit achieved FLOP/s (float32)", f"{e['fits']} fits x {e['steps']} steps",
                 f"{e['achieved_flops'] / 1e9:.2f} GFLOP/s", f"peak {e['matmul_peak_flops'] / 1e9:.1f}",
                 f"{100 * e['fraction_of_peak']:.2f}% of matmul peak (useful {e['useful_flops'] / 1e9:.2f})"))
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    head = ("benchmark", "work", "measured", "target", "notes")
    w = [max(w[i], len(head[i])) for i in range(5)]
    print()
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
    print("  ".join("-" * x for x in w))
    for r in rows:
        print("  ".join(v.ljust(w[i]) for i, v in enumerate(r)))
    print(f"\nload avg at end: {_load()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
