"""Reproduce the paper's phase transitions and a sampling check (spec sections 7, 8, 14).

    python -m molrg.reproduce [--quick] [--device cpu|cuda] [--json FILE] [--skip-softmax]
    python -m molrg.reproduce --neural [--quick] [--trials 2] [--steps 2000] [--width 256] [--device cuda]

Grids (paper: n = 48, d in 2..8, N or N_k in 2..15, 20 trials):
K = 1 with ``pca`` and ``diffusion`` (linear model, exact loss) on the same data;
K = 2 with ``subspace_clustering`` and ``diffusion`` (fitting.py's default for K >= 2: hard-max
surrogate on the exact loss, data-seeded restarts) on the same data; K = 2 soft-max diffusion from
random init (Monte-Carlo loss) for comparison, with fewer trials/steps because it is slow.
``--neural`` runs the neural grid of section 14 instead (:func:`neural_grid`): K = 2, n = 48,
d in {2, 4, 6}, N_k / d in {1, 2, 4, ..., 64}, mlp networks (every chunk's networks one ensemble),
the empirical and exact references and the low-rank diffusion line, on the same data.
The computation lives in library functions (:func:`paper_grids`, :func:`neural_grid`,
:func:`sampling_check`); only :func:`main` prints.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any, TypedDict

import torch

from molrg.sweeps.grid import SweepGrid
from molrg.sweeps.run import run_sweep
from molrg.sweeps.tables import format_scores, format_table
from molrg.sweeps.transition import SweepReport

__all__ = ["Experiment", "default_diffusion_variant", "format_scores", "main", "neural_grid", "paper_grids",
           "sampling_check"]


class _PaperAxes(TypedDict):
    """The grid axes shared by every paper sweep (keyword arguments of :class:`SweepGrid`)."""

    ambient_dims: tuple[int, ...]
    dims: tuple[int, ...]
    samples: tuple[int, ...]


PAPER: _PaperAxes = {"ambient_dims": (48,), "dims": tuple(range(2, 9)), "samples": tuple(range(2, 16))}


@dataclass(frozen=True)
class Experiment:
    """A named sweep of the reproduction and the (method, K) tables to print from it."""

    name: str
    grid: SweepGrid
    tables: tuple[tuple[str, int], ...]
    note: str = ""


def paper_grids(quick: bool = False, skip_softmax: bool = False) -> list[Experiment]:
    """The paper's sweeps (spec section 7); ``quick`` shrinks trials and training steps."""
    trials = 5 if quick else 20
    steps = 500 if quick else 2000
    # The fit's defaults otherwise (Riemannian Adam, QR retraction: Cholesky-QR, the fastest here).
    diff1 = {"steps": steps}
    diff2 = {"steps": steps}
    exps = [
        Experiment(
            "K=1: PCA and diffusion (linear model, exact loss)",
            SweepGrid(**PAPER, n_components=(1,), samples_per="total", trials=trials,
                      methods=("pca", "diffusion"), method_options={"diffusion": diff1}, seed=1),
            (("pca", 1), ("diffusion", 1)),
        ),
        Experiment(
            "K=2: K-subspaces and diffusion (fitting.py default: hard-max surrogate, exact loss)",
            SweepGrid(**PAPER, n_components=(2,), samples_per="component", trials=trials,
                      methods=("subspace_clustering", "diffusion"),
                      method_options={"diffusion": diff2}, seed=2),
            (("subspace_clustering", 2), ("diffusion", 2)),
        ),
    ]
    if not skip_softmax:
        sm_trials = 2 if quick else 5
        sm_steps = 300 if quick else 1000
        exps.append(Experiment(
            "K=2: diffusion, soft-max model from random init (Monte-Carlo loss)",
            SweepGrid(**PAPER, n_components=(2,), samples_per="component", trials=sm_trials,
                      methods=("diffusion",), seed=2,
                      method_options={"diffusion": {"model": "softmax", "init": "random", "restarts": 1,
                                                    "steps": sm_steps, "retraction": "polar"}}),
            (("diffusion", 2),),
            note=f"reduced: {sm_trials} trials, {sm_steps} steps, 1 restart (slow Monte-Carlo training)",
        ))
    return exps


NEURAL_RATIOS = (1, 2, 4, 8, 16, 32, 64)


def neural_grid(quick: bool = False, trials: int | None = None, neural: dict[str, Any] | None = None,
                dims: tuple[int, ...] = (2, 4, 6)) -> Experiment:
    """The CPU-sized neural grid of section 14 (``quick``: d in {2, 4}, 3 ratios, 1 trial, 300 steps)."""
    options = dict(neural or {})
    if quick:
        options.setdefault("steps", 300)
    grid = SweepGrid(
        ambient_dims=(48,), n_components=(2,), dims=(2, 4) if quick else dims,
        samples=(1, 8, 64) if quick else NEURAL_RATIOS, samples_per="dim_ratio",
        trials=trials if trials is not None else (1 if quick else 2),
        methods=("neural", "empirical", "exact", "diffusion"),
        method_options={"neural": options} if options else {}, seed=0,
    )
    return Experiment("K=2: neural (mlp), empirical and exact references, low-rank diffusion; N_k / d axis", grid,
                      (("neural", 2), ("empirical", 2), ("exact", 2), ("diffusion", 2)))


def sampling_check(
    ambient_dim: int = 48, d: int = 4, n_components: int = 2, samples_per_component: int = 8,
    n_samples: int = 500, seed: int = 0, device: str | None = None,
) -> dict[str, Any]:
    """Fit with N_k >= d + 1, sample with Heun, diagnose against the truth (spec section 8)."""
    from molrg.analysis.diagnostics import sample_diagnostics
    from molrg.analysis.metrics import recovery_error
    from molrg.data.synthetic import make_molrg
    from molrg.lowrank.analytic import exact_denoiser
    from molrg.lowrank.fitting import fit_batched
    from molrg.sampling.samplers import sample

    data = make_molrg(ambient_dim, [d] * n_components, samples_per_component=samples_per_component,
                      seed=seed, device=device)
    t0 = time.perf_counter()
    fit = fit_batched(data.X[None], [d] * n_components, "diffusion", seed=seed, device=device)
    fit_s = time.perf_counter() - t0
    U = fit.bases[0]
    t0 = time.perf_counter()
    x = sample(exact_denoiser(U, fit.weights[0]), n_samples, ambient_dim, sampler="heun", seed=seed,
               device=device)
    sample_s = time.perf_counter() - t0
    diag = sample_diagnostics(x, U, fit.weights[0], data.bases, data.X, true_weights=data.weights)
    return {
        "config": {"n": ambient_dim, "K": n_components, "d": d, "N_k": samples_per_component,
                   "n_samples": n_samples, "sampler": "heun", "steps": 18,
                   "fit": {"method": "diffusion", "model": fit.info.get("model"), "init": fit.info.get("init")}},
        "recovery_error": recovery_error(list(U.unbind(0)), data.bases),
        "fit_seconds": fit_s, "sample_seconds": sample_s, "diagnostics": diag,
    }


def default_diffusion_variant(n_components: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The diffusion variant fit_batched picks for K components (model, init, restarts, ...) (spec section 5)."""
    from molrg.data.synthetic import make_molrg
    from molrg.lowrank.fitting import fit_batched

    data = make_molrg(12, [2] * n_components, samples_per_component=3, seed=0)
    fit = fit_batched(data.X[None], [2] * n_components, "diffusion", **{**(options or {}), "steps": 1})
    keys = ("model", "init", "restarts", "schedule", "weighting")
    return {k: fit.info[k] for k in keys if k in fit.info}


def _transition_lines(report: SweepReport, method: str, K: int, n: int) -> list[str]:
    tr = report.transition(method, K, n)
    if tr is None:
        return []
    lines = ["N*(d): " + ", ".join(f"d={r.d}: {r.n_star}" for r in tr.rows)]
    n50 = ", ".join(f"d={r.d}: " + (f"{r.logistic.n50:.2f}" if r.logistic.status == "ok" else r.logistic.status)
                    for r in tr.rows)
    lines.append("logistic N50(d): " + n50)
    if tr.linear_fit_logistic is not None:
        lf = tr.linear_fit_logistic
        sign = "-" if lf.intercept < 0 else "+"
        r2 = "n/a" if lf.r2 is None else f"{lf.r2:.3f}"
        lines.append(f"logistic N50 = {lf.slope:.3f} d {sign} {abs(lf.intercept):.3f}  (R^2 = {r2})")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line entry point: run the grids, print tables, transitions and the sampling check."""
    ap = argparse.ArgumentParser(prog="python -m molrg.reproduce", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 trials, 500 steps (soft-max: 2 trials, 300 steps)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default=None, help="write all reports to this file")
    ap.add_argument("--skip-softmax", action="store_true", help="skip the slow soft-max grid")
    ap.add_argument("--neural", action="store_true", help="run the neural grid of section 14 instead")
    ap.add_argument("--trials", type=int, default=None, help="--neural: trials per cell (default 2)")
    ap.add_argument("--steps", type=int, default=None, help="--neural: training steps (default: the fit default)")
    ap.add_argument("--width", type=int, default=None, help="--neural: mlp width (default: the fit default)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's); 1 is much faster on a busy CPU")
    ap.add_argument("--jobs", type=int, default=None,
                    help="run each grid's chunks in this many processes (one thread each; -1: one per CPU)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = args.device
    print(f"molrg.reproduce  device={device}  torch threads={torch.get_num_threads()}  "
          f"mode={'quick' if args.quick else 'full'}")
    out: dict[str, Any] = {"mode": "quick" if args.quick else "full", "device": device, "experiments": []}
    if args.neural:
        neural = {k: v for k, v in (("steps", args.steps), ("width", args.width)) if v is not None}
        return _run_neural(neural_grid(args.quick, args.trials, neural), device, out, args.json, args.jobs)
    for exp in paper_grids(args.quick, args.skip_softmax):
        g = exp.grid
        print(f"\n=== {exp.name} ===")
        print(f"grid: n={list(g.ambient_dims)} K={list(g.n_components)} d={list(g.dims)} "
              f"{'N_k' if g.samples_per == 'component' else 'N'}={g.samples[0]}..{g.samples[-1]} "
              f"trials={g.trials} fits={g.n_fits} options={g.method_options}")
        if exp.note:
            print(f"note: {exp.note}")
        if "diffusion" in g.methods:
            for K in g.n_components:
                variant = default_diffusion_variant(K, g.method_options.get("diffusion"))
                print(f"diffusion variant (as fit_batched resolves it) for K={K}: {variant}")
        t0 = time.perf_counter()
        report = run_sweep(g, device=device, n_jobs=args.jobs)
        wall = time.perf_counter() - t0
        print(f"time: {wall:.1f} s wall for {g.n_fits} fits (data generation + fits + metrics)")
        for method, K in exp.tables:
            print()
            print(format_table(report, method, K, g.ambient_dims[0]))
            for line in _transition_lines(report, method, K, g.ambient_dims[0]):
                print(line)
            secs = [c.fit_seconds_mean for c in report.cells if c.method == method]
            print(f"mean fit time per trial ({method}): {sum(secs) / max(len(secs), 1) * 1e3:.2f} ms")
        out["experiments"].append({"name": exp.name, "note": exp.note, "wall_seconds": wall,
                                   "report": report.to_dict()})
    print("\n=== Sampling check: K=2, d=4, N_k=8, n=48; diffusion fit, 500 Heun samples (18 steps) ===")
    chk = sampling_check(device=device)
    true = chk["diagnostics"]["true"]
    print(f"fit: {chk['config']['fit']}, recovery error {chk['recovery_error']:.2e}, "
          f"fit {chk['fit_seconds']:.2f} s, sampling {chk['sample_seconds']:.2f} s")
    med = true["residual"]["median"]
    print(f"relative residual vs TRUE subspaces: median {med:.2e} "
          f"({'< 1e-2 OK' if med < 1e-2 else 'NOT below 1e-2'}), max {true['residual']['max']:.2e}")
    print(f"component frequencies {[round(f, 3) for f in true['frequencies']]} vs pi "
          f"{[round(f, 3) for f in true['expected_frequencies']]} (chi2 p = {true['frequency_chi2_pvalue']:.3f})")
    if "memorisation" in chk["diagnostics"]:
        m = chk["diagnostics"]["memorisation"]
        print(f"generalisation score {m['generalisation_score']:.3f} (memorised fraction {m['memorised_fraction']:.3f})")
    out["sampling_check"] = chk
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"\nwrote {args.json}")
    return out


def _run_neural(exp: Experiment, device: str, out: dict[str, Any], json_path: str | None,
                n_jobs: int | None = None) -> dict[str, Any]:
    g = exp.grid
    print(f"\n=== {exp.name} ===")
    print(f"grid: n={list(g.ambient_dims)} K={list(g.n_components)} d={list(g.dims)} N_k/d={list(g.samples)} "
          f"trials={g.trials} fits={g.n_fits} neural options={g.method_options.get('neural', {})}")
    t0 = time.perf_counter()
    report = run_sweep(g, device=device, n_jobs=n_jobs)
    wall = time.perf_counter() - t0
    print(f"time: {wall:.1f} s wall for {g.n_fits} fits (data, training, sampling, scores)")
    for method, K in exp.tables:
        print()
        if method in ("neural", "empirical", "exact"):
            print(format_scores(report, method, K, g.ambient_dims[0]))
            if method == "neural":
                print(format_scores(report, method, K, g.ambient_dims[0], "memorised_fraction"))
        else:
            print(format_table(report, method, K, g.ambient_dims[0]))
    out["experiments"].append({"name": exp.name, "wall_seconds": wall, "report": report.to_dict()})
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"\nwrote {json_path}")
    return out


if __name__ == "__main__":
    main()
