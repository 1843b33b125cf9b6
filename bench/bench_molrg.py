"""Benchmark the batched MoLRG sweeps on this machine (spec sections 7, 11).

    .venv/bin/python bench/bench_molrg.py [--quick] [--softmax] [--flops] [--device cpu|cuda] [--json out.json]

(a) K=1 diffusion paper grid (linear model, exact loss, 2000 steps, the fit's defaults as in paper_grids),
    target <= 15 s for 1960 fits, with its success table;
(b) K=2 hard-max diffusion paper grid (exact loss, data-seeded init, 2 restarts), target <= 60 s;
(c) K-subspaces K=2 paper grid, target < 10 s;
(a') grid (a) again in run_sweep's worker processes (--jobs, default one per CPU, one thread each);
(d) the same fits run as a naive per-fit loop (fit_batched on one trial at a time, B = 1), timed
    on a subsample of each grid in the same run and extrapolated to the grid (labelled as such);
(s) optional: K=2 soft-max Monte-Carlo grid; (e) optional: achieved FLOP/s of (a) against a large
    float32 matmul.
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
DIFF_OPTS = {"steps": 2000}  # the fit's defaults otherwise (Riemannian Adam, QR retraction), as molrg.reproduce


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _sweep(grid: SweepGrid, device: str, n_jobs: int | None = None) -> tuple[float, Any]:
    t0 = time.perf_counter()
    report = run_sweep(grid, device=device, n_jobs=n_jobs)
    return time.perf_counter() - t0, report


def _rate(report: Any, method: str) -> float:
    cells = [c for c in report.cells if c.method == method]
    return sum(c.successes for c in cells) / max(1, sum(c.trials for c in cells))


def _table(report: Any, method: str) -> list[list[int]]:
    """Successes per (d, N) cell: rows d, columns N of the paper grid."""
    got = {(c.d, c.samples): c.successes for c in report.cells if c.method == method}
    return [[got.get((d, N), 0) for N in PAPER["samples"]] for d in PAPER["dims"]]


def bench_grid(K: int, trials: int, device: str, steps: int, method: str = "diffusion",
               n_jobs: int | None = None) -> dict[str, Any]:
    """(a) K=1 diffusion grid (exact linear loss) / (b) K=2 hard-max grid / (c) K=2 K-subspaces grid.

    ``n_jobs``: run_sweep's worker processes (None: the chunks in turn in this process)."""
    opts = {"method_options": {"diffusion": {**DIFF_OPTS, "steps": steps}}} if method == "diffusion" else {}
    g = SweepGrid(**PAPER, n_components=[K], samples_per="total" if K == 1 else "component", trials=trials,
                  methods=[method], seed=K, **opts)
    load0 = _load()
    wall, rep = _sweep(g, device, n_jobs)
    target = (15.0 if K == 1 else 60.0) if method == "diffusion" else 10.0
    return {"K": K, "method": method, "fits": g.n_fits, "steps": steps, "wall_s": wall,
            "fit_s": rep.total_fit_seconds, "success": _rate(rep, method), "table": _table(rep, method),
            "target_s": target * g.n_fits / 1960, "load_before": load0, "load_after": _load()}


def bench_naive_loop(K: int, trials: int, device: str, steps: int, n_loop: int) -> dict[str, Any]:
    """(d) fits of grid (a)/(b) one at a time (B = 1, no padding): a subsample, extrapolated to the grid."""
    g = SweepGrid(**PAPER, n_components=[K], samples_per="total" if K == 1 else "component", trials=trials,
                  methods=["diffusion"], seed=K)
    cells = g.cells()
    pick = [cells[i] for i in range(0, len(cells), max(1, len(cells) // n_loop))][:n_loop]
    t0 = time.perf_counter()
    for j, cell in enumerate(pick):
        b = sample_molrg_batch([17 * j + 1], 48, [cell.d] * K, n_samples=None if K > 1 else cell.samples,
                               samples_per_component=cell.samples if K > 1 else None, device=device)
        fit_batched(b.X, [cell.d] * K, "diffusion", seed=0, device=device, **{**DIFF_OPTS, "steps": steps})
    per_fit = (time.perf_counter() - t0) / len(pick)
    return {"K": K, "fits_timed": len(pick), "per_fit_s": per_fit, "grid_fits": g.n_fits,
            "grid_extrapolated_s": per_fit * g.n_fits}


def bench_softmax(trials: int, device: str, steps: int) -> dict[str, Any]:
    """(b) the K=2 soft-max Monte-Carlo grid (random init, 1 restart)."""
    opts = {"model": "softmax", "init": "random", "restarts": 1, "steps": steps, "retraction": "polar"}
    g = SweepGrid(**PAPER, n_components=[2], samples_per="component", trials=trials, methods=["diffusion"],
                  method_options={"diffusion": opts}, seed=2)
    wall, rep = _sweep(g, device)
    return {"fits": g.n_fits, "steps": steps, "wall_s": wall, "fit_s": rep.total_fit_seconds,
            "success": _rate(rep, "diffusion"), "target_s": 600.0 * g.n_fits / 1960}


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
    """Matmul FLOPs of one K=1 Riemannian-Adam step with QR retraction, one trial (molrg.lowrank.exact_steps).

    loss/grad: X U and (w X U)^T X -> 4 N n d, U^T S U = P^T w P -> 2 N d^2, G - U H -> 2 n d^2; two
    tangent projections (D U, U sym(.)) -> 8 n d^2; Cholesky-QR: Y Y^T and L^{-1} Y -> 3 n d^2
    (+ O(d^3) Cholesky, ignored).
    """
    return 4.0 * n_rows * n * d + 2.0 * n_rows * d * d + 13.0 * n * d * d


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
    ap.add_argument("--quick", action="store_true", help="fewer trials; numbers labelled")
    ap.add_argument("--softmax", action="store_true", help="also run the K=2 soft-max Monte-Carlo grid")
    ap.add_argument("--flops", action="store_true", help="also measure achieved FLOP/s of (a)")
    ap.add_argument("--loop-fits", type=int, default=8, help="fits timed per grid in the naive loop (d)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="(a'): grid (a) again with run_sweep(n_jobs=JOBS) processes; 1 skips it (default: CPUs)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    q, dev = args.quick, args.device
    trials = 5 if q else 20
    print(f"bench_molrg  device={dev}  torch {torch.__version__}  threads={torch.get_num_threads()}  "
          f"cpus={os.cpu_count()}  {platform.processor() or platform.machine()}  "
          f"mode={'quick' if q else 'full'}  load avg at start: {_load()}")
    print("NOTE: the CPU is shared with other processes; timings are noisy (see load averages).")
    out: dict[str, Any] = {"device": dev, "threads": torch.get_num_threads(), "quick": q}
    rows: list[tuple[str, str, str, str, str]] = []
    for key, K, method, label in (("a_k1_diffusion", 1, "diffusion", "(a) K=1 diffusion grid, exact loss"),
                                  ("b_k2_hardmax", 2, "diffusion", "(b) K=2 hard-max diffusion grid"),
                                  ("c_ksubspaces", 2, "subspace_clustering", "(c) K=2 K-subspaces grid")):
        r = bench_grid(K, trials, dev, 2000, method)
        out[key] = r
        rows.append((label, f"{r['fits']} fits", f"{r['wall_s']:.1f} s", f"<= {r['target_s']:.0f} s",
                     f"success {r['success']:.3f}, load {r['load_before']} -> {r['load_after']}"))
        print(f"{label}: {r['wall_s']:.1f} s, successes per (d = 2..8 rows, N or N_k = 2..15 columns):", flush=True)
        for d, line in zip(PAPER["dims"], r["table"], strict=True):
            print(f"  d={d}: " + " ".join(f"{v:2d}" for v in line))
        if K == 1 and method == "diffusion" and args.jobs > 1:
            rj = bench_grid(K, trials, dev, 2000, method, n_jobs=args.jobs)
            out[key + "_processes"] = rj
            rows.append((f"(a') the same grid, run_sweep(n_jobs={args.jobs})", f"{rj['fits']} fits",
                         f"{rj['wall_s']:.1f} s", f"<= {rj['target_s']:.0f} s",
                         f"success {rj['success']:.3f}, same table: {rj['table'] == r['table']}; incl. process start"))
            print(f"(a') with {args.jobs} processes: {rj['wall_s']:.1f} s, same table: {rj['table'] == r['table']}",
                  flush=True)
        if method == "diffusion":
            lp = bench_naive_loop(K, trials, dev, 2000, args.loop_fits)
            out[key + "_naive_loop"] = lp
            rows.append((f"(d) naive per-fit loop of {label[:3]}", f"{lp['fits_timed']} fits timed",
                         f"~{lp['grid_extrapolated_s']:.0f} s", "(extrapolated)",
                         f"{lp['per_fit_s'] * 1e3:.0f} ms/fit; batched is {lp['grid_extrapolated_s'] / r['wall_s']:.1f}x"))
            print(f"  naive loop: {lp['per_fit_s'] * 1e3:.0f} ms/fit -> ~{lp['grid_extrapolated_s']:.0f} s for the grid",
                  flush=True)
    if args.softmax:
        sm = bench_softmax(1 if q else 20, dev, 300 if q else 1000)
        out["s_softmax"] = sm
        rows.append(("(s) K=2 soft-max MC grid, random init", f"{sm['fits']} fits x {sm['steps']} steps",
                     f"{sm['wall_s']:.1f} s", f"< {sm['target_s']:.0f} s", f"success {sm['success']:.2f}"))
    if args.flops:
        e = bench_flops(dev, 500 if q else 2000, trials)
        out["e_flops"] = e
        rows.append(("(e) K=1 fit achieved FLOP/s (float32)", f"{e['fits']} fits x {e['steps']} steps",
                     f"{e['achieved_flops'] / 1e9:.2f} GFLOP/s", f"peak {e['matmul_peak_flops'] / 1e9:.1f}",
                     f"{100 * e['fraction_of_peak']:.2f}% of matmul peak (useful {e['useful_flops'] / 1e9:.2f})"))
    w = [max(len(row[i]) for row in rows) for i in range(5)]
    head = ("benchmark", "work", "measured", "target", "notes")
    w = [max(w[i], len(head[i])) for i in range(5)]
    print()
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
    print("  ".join("-" * x for x in w))
    for row in rows:
        print("  ".join(v.ljust(w[i]) for i, v in enumerate(row)))
    print(f"\nload avg at end: {_load()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
