"""Sample-complexity sweeps: running chunks as batched trials, merging, summarising (spec section 7).

One trial = generate MoLRG data -> fit with every method -> measure the recovery error. All methods
of a trial see the same data, so they compare side by side. The grid, its per-trial seeds and its
chunk plan live in :mod:`molrg.sweeps.grid`.

* Chunks from :func:`molrg.sweeps.grid.plan_chunks` run separately (:func:`run_chunk`) and are merged by
  :func:`merge`, which is idempotent on the key ``(cell, trial, method)``: a re-run chunk never
  double-counts.
* Batching: inside a chunk every trial of one shape ``(n, K, d, N)`` is one call to
  :func:`molrg.lowrank.fitting.fit_batched` with a leading batch dimension.
* ``pca`` applies to K = 1 cells only (:meth:`molrg.sweeps.grid.SweepGrid.methods_for`); other cells skip it.
* Sample-scored methods (``neural``, ``empirical``, ``exact``; sections 12-14) run every trial of the
  chunk with one n and K as one program (:func:`molrg.sweeps.scored.run_scored`): all of a chunk's
  networks train as one ensemble.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from molrg.spec import SAMPLE_SCORED_METHODS
from molrg.sweeps.grid import (
    DEFAULT_MAX_FITS_PER_CHUNK,
    Cell,
    Chunk,
    SweepGrid,
    derive_seed,
    plan_chunks,
    trial_seed,
)
from molrg.sweeps.scored import SUCCESS_SCORE
from molrg.sweeps.transition import SweepReport, build_report

__all__ = [
    "SweepProgress",
    "TrialResult",
    "fit_seed",
    "merge",
    "run_chunk",
    "run_sweep",
    "summarise",
]


@dataclass(frozen=True)
class TrialResult:
    """Outcome of one (cell, trial, method) fit (spec sections 6, 7); JSON-able via to_dict."""

    ambient_dim: int
    n_components: int
    d: int
    samples: int
    samples_per: str
    trial: int
    seed: int
    method: str
    error: float  # max over components of ||P_hat - P||_F after the best permutation
    mean_error: float
    success: bool
    fit_seconds: float  # wall time of the batched call divided by its batch size
    converged: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # sample-scored methods (section 13); None for the low-rank methods
    memorised_fraction: float | None = None
    generalisation_score: float | None = None
    on_support_fraction: float | None = None
    scores_by_step: dict[str, dict[str, float]] | None = None  # neural with eval_at_steps: step -> scores

    @property
    def key(self) -> tuple[int, int, int, int, str, int, str]:
        """Identity used by :func:`merge`: (cell, samples_per, trial, method)."""
        return (self.ambient_dim, self.n_components, self.d, self.samples, self.samples_per,
                self.trial, self.method)

    @property
    def cell(self) -> Cell:
        """The grid cell of this trial."""
        return Cell(self.ambient_dim, self.n_components, self.d, self.samples)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class SweepProgress:
    """Progress of :func:`run_chunk`, passed to its callback after each batched fit and, while a
    chunk's networks train, every few steps (``step`` / ``total_steps`` set)."""

    fits_done: int
    fits_total: int
    method: str
    cell: Cell
    batch_size: int
    seconds: float
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None


def _jsonable(value: Any, b: int, batch: int) -> Any:
    """Row ``b`` of a per-trial info value (tensor/list of length ``batch``), else the value if JSON-able."""
    if isinstance(value, Tensor):
        if value.ndim >= 1 and value.shape[0] == batch:
            value = value[b]
        if value.numel() == 1:
            return value.item()
        return value.detach().cpu().tolist() if value.numel() <= 64 else None
    if isinstance(value, list | tuple) and len(value) == batch:
        return _jsonable(value[b], 0, 1)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v, b, batch) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, 0, 1) for v in value]
    return repr(value)


Solver = Callable[..., Any]


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes a keyword ``name`` explicitly."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def fit_seed(grid: SweepGrid, method: str, ambient_dim: int, n_components: int, d: int) -> int:
    """Solver seed of a batched fit, independent of trials and sample sizes (spec section 7).

    It must not depend on which trials or cells share the batch, or chunking would change results;
    the solvers draw their restart randomness without a batch dimension (or per row), so with this
    seed a trial's fit depends only on its own data.
    """
    return derive_seed(int(grid.seed), "fit", method, int(ambient_dim), int(n_components), int(d))


def run_chunk(
    grid: SweepGrid,
    chunk: Chunk,
    *,
    device: torch.device | str | None = None,
    solver: Solver | None = None,
    callback: Callable[[SweepProgress], bool | None] | None = None,
    pad_samples: bool | None = None,
) -> list[TrialResult]:
    """Run every (cell, trial, method) of ``chunk``, one batched fit per shape (spec section 7).

    Parameters
    ----------
    grid : the sweep; validated here.
    chunk : from :func:`plan_chunks` (or built by hand).
    device : where data and fits live.
    solver : ``fit_batched``-compatible callable (default :func:`molrg.lowrank.fitting.fit_batched`);
        called as ``solver(X (B,N,n), dims, method, seed=..., device=..., [n_valid=...], **options)``
        returning an object with ``bases`` (B, K, n, dmax) and optionally ``info`` (dict).
    callback : called with a :class:`SweepProgress` after each batched fit; returning True stops
        the chunk early and returns the trials finished so far (merge them as usual).
    pad_samples : batch cells that differ only in N into one call by zero-padding rows and passing
        ``n_valid`` (B,); default: True for the default ``fit_batched``, else when the solver
        has an explicit ``n_valid`` parameter.

    Returns
    -------
    list of TrialResult, one per (cell, trial, applicable method).
    """
    from molrg.analysis.metrics import matched_errors
    from molrg.data.synthetic import sample_molrg_batch

    grid.validate()
    if solver is None:
        from molrg.lowrank.fitting import fit_batched

        solver = fit_batched
        # fit_batched takes n_valid through **options (docs/CONTRACTS.md, molrg/lowrank/fitting.py).
        pad_samples = True if pad_samples is None else pad_samples
    if pad_samples is None:
        pad_samples = _accepts(solver, "n_valid")
    trials = list(range(chunk.trial_start, chunk.trial_stop))
    total = sum(len(grid.methods_for(c.n_components)) * len(trials) for c in chunk.cells)
    if not trials:
        return []
    # Data once per cell (all methods see the same trials), then group cells by fit shape.
    groups: dict[tuple[int, ...], list[tuple[Cell, Any, list[int]]]] = {}
    for cell in chunk.cells:
        if not grid.methods_for(cell.n_components):
            continue
        seeds = [trial_seed(grid, cell, t) for t in trials]
        n_k = grid.samples_per_component(cell)
        batch = sample_molrg_batch(
            seeds, cell.ambient_dim, [cell.d] * cell.n_components,
            n_samples=cell.samples if n_k is None else None, samples_per_component=n_k,
            orthogonal=grid.orthogonal, noise_std=grid.noise_std, device=device,
        )
        shape = (cell.ambient_dim, cell.n_components, cell.d)
        key = shape if pad_samples else (*shape, cell.samples)
        groups.setdefault(key, []).append((cell, batch, seeds))

    done = 0
    results: list[TrialResult] = []
    scored = [m for m in grid.methods if m in SAMPLE_SCORED_METHODS]
    for (n, K, d, *_), members in groups.items():
        if not [m for m in grid.methods_for(K) if m not in SAMPLE_SCORED_METHODS]:
            continue
        dims = [d] * K
        Ns = [int(b.X.shape[1]) for _, b, _ in members]
        Nmax = max(Ns)
        X = torch.cat([torch.nn.functional.pad(b.X, (0, 0, 0, Nmax - b.X.shape[1])) for _, b, _ in members])
        U_true = torch.cat([b.bases for _, b, _ in members])
        extra: dict[str, Any] = {}
        if pad_samples:
            extra["n_valid"] = torch.tensor([N for N in Ns for _ in trials], device=X.device)
        B = int(X.shape[0])
        for method in grid.methods_for(K):
            if method in SAMPLE_SCORED_METHODS:
                continue
            options = {**grid.method_options.get(method, {}), **extra}
            t0 = time.perf_counter()
            fit = solver(X, dims, method, seed=fit_seed(grid, method, n, K, d), device=device, **options)
            seconds = time.perf_counter() - t0
            errors = matched_errors(fit.bases.to(U_true), U_true)  # (B, K), float64
            emax, emean = errors.max(dim=-1).values.tolist(), errors.mean(dim=-1).tolist()
            info = dict(getattr(fit, "info", None) or {})
            row = 0
            for cell, _, seeds in members:
                for t, seed in zip(trials, seeds, strict=True):
                    row_info = {k: _jsonable(v, row, B) for k, v in info.items()}
                    conv = row_info.pop("converged", None)
                    results.append(TrialResult(
                        ambient_dim=n, n_components=K, d=d, samples=cell.samples,
                        samples_per=grid.samples_per, trial=t, seed=seed, method=method,
                        error=emax[row], mean_error=emean[row],
                        success=bool(emax[row] < grid.success_threshold), fit_seconds=seconds / B,
                        converged=None if conv is None else bool(conv), info=row_info,
                    ))
                    row += 1
            done += B
            if callback is not None and callback(
                SweepProgress(done, total, method, members[0][0], B, seconds)
            ):
                return results
    if scored:
        stopped = _run_scored_methods(grid, scored, groups, trials, device, callback, done, total, results)
        if stopped:
            return results
    return results


def _run_scored_methods(grid: SweepGrid, methods: list[str], groups: dict[tuple[int, ...], list[tuple[Cell, Any, list[int]]]],
                        trials: list[int], device: torch.device | str | None,
                        callback: Callable[[SweepProgress], bool | None] | None, done: int, total: int,
                        results: list[TrialResult]) -> bool:
    """Append the sample-scored trials of a chunk (one program per (n, K) and method); True if stopped."""
    from molrg.sweeps.scored import ScoredTrial, run_scored

    by_shape: dict[tuple[int, int], list[ScoredTrial]] = {}
    for members in groups.values():
        for cell, batch, seeds in members:
            for i, (t, seed) in enumerate(zip(trials, seeds, strict=True)):
                d = cell.d
                by_shape.setdefault((cell.ambient_dim, cell.n_components), []).append(ScoredTrial(
                    cell=cell, trial=t, seed=seed, X=batch.X[i], labels=batch.labels[i],
                    bases=batch.bases[i, :, :, :d]))
    for (_, K), units in by_shape.items():
        for method in methods:
            def on_step(p: Any, method: str = method, units: list[ScoredTrial] = units, done: int = done) -> bool:
                return bool(callback is not None and callback(SweepProgress(
                    done, total, method, units[0].cell, len(units), 0.0, p.step, p.total_steps, p.loss)))

            t0 = time.perf_counter()
            outcomes = run_scored(grid, method, units, device=device, on_step=on_step)
            if outcomes is None:
                return True
            for u, o in zip(units, outcomes, strict=True):
                c = u.cell
                results.append(TrialResult(
                    ambient_dim=c.ambient_dim, n_components=K, d=c.d, samples=c.samples,
                    samples_per=grid.samples_per, trial=u.trial, seed=u.seed, method=method,
                    error=o.error, mean_error=o.mean_error, success=bool(o.generalisation_score >= SUCCESS_SCORE),
                    fit_seconds=o.seconds, info=dict(o.info), memorised_fraction=o.memorised_fraction,
                    generalisation_score=o.generalisation_score, on_support_fraction=o.on_support_fraction,
                    scores_by_step=o.scores_by_step,
                ))
            done += len(units)
            if callback is not None and callback(SweepProgress(done, total, method, units[0].cell, len(units),
                                                               time.perf_counter() - t0)):
                return True
    return False


def merge(*trial_lists: Iterable[TrialResult]) -> list[TrialResult]:
    """Union of trial lists keyed by (cell, trial, method); duplicates are dropped (first kept)."""
    seen: dict[tuple, TrialResult] = {}
    for trials in trial_lists:
        for tr in trials:
            seen.setdefault(tr.key, tr)
    return [seen[k] for k in sorted(seen)]


def summarise(grid: SweepGrid, trials: Sequence[TrialResult] | Iterable[TrialResult]) -> SweepReport:
    """Success table, errors, N*(d), logistic and linear fits of a sweep (spec section 7)."""
    return build_report(grid.to_dict(), merge(trials))


def _one_thread() -> None:
    """Initialiser of a sweep's worker process: one torch thread per process (spec section 11)."""
    torch.set_num_threads(1)


def run_sweep(
    grid: SweepGrid,
    *,
    device: torch.device | str | None = None,
    callback: Callable[[SweepProgress], bool | None] | None = None,
    max_fits_per_chunk: int = DEFAULT_MAX_FITS_PER_CHUNK,
    solver: Solver | None = None,
    n_jobs: int | None = None,
) -> SweepReport:
    """Plan chunks, run them, merge and summarise (spec section 7).

    ``n_jobs``: None or 1 runs the chunks in turn in this process (``callback`` after every batched
    fit); k > 1 runs them in k spawned processes with one torch thread each, as the service's sweep
    workers do (-1: one per CPU), and calls ``callback`` once per finished chunk. A trial's result does
    not depend on it: chunks are planned the same way and a trial's seeds depend only on its grid
    position. ``solver`` must then be picklable (a module-level function).
    """
    chunks = plan_chunks(grid, max_fits_per_chunk)
    if n_jobs is not None and (n_jobs == 0 or n_jobs < -1):
        raise ValueError(f"n_jobs={n_jobs}: expected None, -1 or a positive int")
    jobs = min(len(chunks), (os.cpu_count() or 1) if n_jobs == -1 else (n_jobs or 1))
    results: list[TrialResult] = []
    stopped = False

    def relay(p: SweepProgress) -> bool:
        nonlocal stopped
        stopped = bool(callback(p)) if callback is not None else False
        return stopped

    if jobs <= 1:
        for chunk in chunks:
            results.extend(run_chunk(grid, chunk, device=device, solver=solver, callback=relay))
            if stopped:
                break
        return summarise(grid, results)
    total = sum(len(grid.methods_for(c.n_components)) * (ch.trial_stop - ch.trial_start)
                for ch in chunks for c in ch.cells)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads / CUDA
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
        futures = [pool.submit(run_chunk, grid, chunk, device=device, solver=solver) for chunk in chunks]
        started = time.perf_counter()
        for future in as_completed(futures):
            part = future.result()
            results.extend(part)
            if part and relay(SweepProgress(len(results), total, part[-1].method, part[-1].cell, len(part),
                                            time.perf_counter() - started)):
                for other in futures:
                    other.cancel()
                break
    return summarise(grid, results)
