"""Sample-complexity sweeps: grid, per-trial seeds, chunks, batched trials (spec section 7).

A sweep is a grid of cells ``(ambient_dim n, K, d, samples)`` with ``trials`` independent trials
each; one trial = generate MoLRG data -> fit with every method -> measure the recovery error.
All methods of a trial see the same data, so they compare side by side.

* Seeds: trial seeds come from a stable hash (blake2b) of ``(sweep seed, n, K, d, samples, trial)``,
  never from Python's ``hash()`` or from the position in a batch, so a trial gives the same result
  whichever chunk, batch or machine ran it.
* Chunks: :func:`plan_chunks` cuts the grid into JSON-able :class:`Chunk` s (cells x trial range)
  that run separately (:func:`run_chunk`) and are merged by :func:`merge`, which is idempotent on
  the key ``(cell, trial, method)``: a re-run chunk never double-counts.
* Batching: inside a chunk every trial of one shape ``(n, K, d, N)`` is one call to
  :func:`molrg.fitting.fit_batched` with a leading batch dimension.
* ``pca`` is only defined for K = 1: for K >= 2 cells it is *skipped* (not an error), so one grid
  can hold K = 1 and K = 2 with ``methods=["pca", "diffusion"]``; a grid where some method applies
  to no cell at all is rejected by :meth:`SweepGrid.validate`.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor

from molrg.transition import SweepReport, build_report

__all__ = [
    "KNOWN_METHODS",
    "Cell",
    "Chunk",
    "SweepGrid",
    "SweepProgress",
    "TrialResult",
    "derive_seed",
    "fit_seed",
    "merge",
    "plan_chunks",
    "run_chunk",
    "run_sweep",
    "summarise",
    "trial_seed",
]

KNOWN_METHODS = ("pca", "subspace_clustering", "diffusion")
DEFAULT_MAX_FITS_PER_CHUNK = 4096


class Cell(NamedTuple):
    """One grid cell (spec section 7): ambient dim n, K components of dim d, samples (N or N_k)."""

    ambient_dim: int
    n_components: int
    d: int
    samples: int


def _ints(name: str, values: Iterable[int]) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if not out:
        raise ValueError(f"{name}: need at least one value")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={list(out)} has duplicates; list each value once")
    return out


@dataclass(frozen=True)
class SweepGrid:
    """A sample-complexity grid (spec section 7); lists are stored as tuples.

    ``samples`` are ``N_k`` per component (``samples_per="component"``, paper K >= 2 setting,
    ``N = K * N_k``) or the total ``N`` (``samples_per="total"``). Every component has dim ``d``.
    ``method_options[method]`` is passed to ``fit_batched`` as keyword options.
    """

    ambient_dims: tuple[int, ...] = (48,)
    n_components: tuple[int, ...] = (1,)
    dims: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
    samples: tuple[int, ...] = tuple(range(2, 16))
    samples_per: str = "component"
    trials: int = 20
    methods: tuple[str, ...] = ("pca",)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    noise_std: float = 0.0
    orthogonal: bool = True
    success_threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("ambient_dims", "n_components", "dims", "samples"):
            object.__setattr__(self, name, _ints(name, getattr(self, name)))
        object.__setattr__(self, "methods", tuple(str(m) for m in self.methods))
        opts = {str(k): dict(v) for k, v in dict(self.method_options).items()}
        object.__setattr__(self, "method_options", opts)

    def validate(self) -> SweepGrid:
        """Raise ValueError naming the offending field and a fix (spec section 7); return self."""
        if any(n < 2 for n in self.ambient_dims):
            raise ValueError(f"ambient_dims={list(self.ambient_dims)} must all be >= 2")
        if any(k < 1 for k in self.n_components):
            raise ValueError(f"n_components={list(self.n_components)} must all be >= 1")
        if any(d < 1 for d in self.dims):
            raise ValueError(f"dims={list(self.dims)} must all be >= 1")
        if any(s < 1 for s in self.samples):
            raise ValueError(f"samples={list(self.samples)} must all be >= 1")
        if self.samples_per not in ("component", "total"):
            raise ValueError(f"samples_per={self.samples_per!r} must be 'component' or 'total'")
        if self.trials < 1:
            raise ValueError(f"trials={self.trials} must be >= 1")
        if not self.methods:
            raise ValueError(f"methods: need at least one of {list(KNOWN_METHODS)}")
        for m in self.methods:
            if m not in KNOWN_METHODS:
                raise ValueError(f"methods: unknown method {m!r}; choose from {list(KNOWN_METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods={list(self.methods)} has duplicates")
        for m in self.method_options:
            if m not in self.methods:
                raise ValueError(f"method_options: {m!r} is not in methods={list(self.methods)}")
        if "pca" in self.methods and 1 not in self.n_components:
            raise ValueError(
                f"methods: 'pca' needs K = 1 but n_components={list(self.n_components)}; "
                "use 'subspace_clustering' for K >= 2"
            )
        if self.noise_std < 0:
            raise ValueError(f"noise_std={self.noise_std} must be >= 0")
        if not 0 < self.success_threshold:
            raise ValueError(f"success_threshold={self.success_threshold} must be > 0")
        dmax = max(self.dims)
        for n in self.ambient_dims:
            if dmax >= n:
                raise ValueError(f"dims: d={dmax} must be < ambient_dim={n}; reduce dims")
            for K in self.n_components:
                if self.orthogonal and K * dmax > n:
                    raise ValueError(
                        f"orthogonal: K*d={K}*{dmax}={K * dmax} exceeds ambient_dim={n}; "
                        "use orthogonal=False, smaller dims or fewer n_components"
                    )
        return self

    def methods_for(self, n_components: int) -> tuple[str, ...]:
        """Methods that apply to a K-component cell: 'pca' only for K = 1 (spec section 5)."""
        return tuple(m for m in self.methods if m != "pca" or n_components == 1)

    def cells(self) -> list[Cell]:
        """All cells in a fixed order (n, K, d, samples) (spec section 7)."""
        return [
            Cell(n, K, d, s)
            for n in self.ambient_dims
            for K in self.n_components
            for d in self.dims
            for s in self.samples
        ]

    def n_total_samples(self, cell: Cell) -> int:
        """N, the total number of samples of a trial in ``cell``."""
        return cell.samples * cell.n_components if self.samples_per == "component" else cell.samples

    @property
    def n_cells(self) -> int:
        """Number of grid cells."""
        return len(self.ambient_dims) * len(self.n_components) * len(self.dims) * len(self.samples)

    @property
    def n_fits(self) -> int:
        """Number of fits (cells x trials x applicable methods)."""
        return sum(self.trials * len(self.methods_for(c.n_components)) for c in self.cells())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; :meth:`from_dict` inverts it."""
        out = asdict(self)
        for name in ("ambient_dims", "n_components", "dims", "samples", "methods"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepGrid:
        """Build from :meth:`to_dict` output; unknown keys raise ValueError."""
        names = {f.name for f in fields(cls)}
        extra = sorted(set(data) - names)
        if extra:
            raise ValueError(f"SweepGrid: unknown fields {extra}; known: {sorted(names)}")
        return cls(**data)


def derive_seed(*parts: object) -> int:
    """Stable 63-bit seed from a canonical string of ``parts`` via blake2b (spec section 7)."""
    text = "molrg.sweeps|" + "|".join(repr(p) for p in parts)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)


def trial_seed(grid: SweepGrid, cell: Cell, trial: int) -> int:
    """Data seed of one trial from (sweep seed, n, K, d, samples, trial) (spec section 7)."""
    return derive_seed(int(grid.seed), *(int(v) for v in cell), int(trial))


@dataclass(frozen=True)
class Chunk:
    """A runnable, JSON-able piece of a sweep: ``cells`` x trials ``[trial_start, trial_stop)``."""

    cells: tuple[Cell, ...]
    trial_start: int
    trial_stop: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", tuple(Cell(*(int(v) for v in c)) for c in self.cells))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; :meth:`from_dict` inverts it."""
        return {"cells": [list(c) for c in self.cells], "trial_start": self.trial_start,
                "trial_stop": self.trial_stop}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(Cell(*c) for c in data["cells"]), int(data["trial_start"]), int(data["trial_stop"]))

    def units(self) -> list[tuple[Cell, int]]:
        """The (cell, trial) pairs of this chunk."""
        return [(c, t) for c in self.cells for t in range(self.trial_start, self.trial_stop)]


def plan_chunks(grid: SweepGrid, max_fits_per_chunk: int = DEFAULT_MAX_FITS_PER_CHUNK) -> list[Chunk]:
    """Cut the grid into chunks of at most ``max_fits_per_chunk`` fits (spec section 7).

    Whole cells are packed together while they fit (so trials of equal shape batch together);
    a cell larger than the budget is split into trial ranges. Every (cell, trial) lands in exactly
    one chunk. A single fit larger than the budget still gets its own chunk.
    """
    grid.validate()
    if max_fits_per_chunk < 1:
        raise ValueError(f"max_fits_per_chunk={max_fits_per_chunk} must be >= 1")
    chunks: list[Chunk] = []
    pending: list[Cell] = []
    pending_fits = 0
    for cell in grid.cells():
        per_trial = len(grid.methods_for(cell.n_components))
        if per_trial == 0:
            continue
        cell_fits = per_trial * grid.trials
        if cell_fits > max_fits_per_chunk:
            step = max(1, max_fits_per_chunk // per_trial)
            for start in range(0, grid.trials, step):
                chunks.append(Chunk((cell,), start, min(grid.trials, start + step)))
            continue
        if pending_fits + cell_fits > max_fits_per_chunk:
            chunks.append(Chunk(tuple(pending), 0, grid.trials))
            pending, pending_fits = [], 0
        pending.append(cell)
        pending_fits += cell_fits
    if pending:
        chunks.append(Chunk(tuple(pending), 0, grid.trials))
    return chunks


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
    """Progress of :func:`run_chunk`, passed to its callback after each batched fit."""

    fits_done: int
    fits_total: int
    method: str
    cell: Cell
    batch_size: int
    seconds: float


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
    solver : ``fit_batched``-compatible callable (default :func:`molrg.fitting.fit_batched`);
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
    from molrg.data import sample_molrg_batch
    from molrg.metrics import matched_errors

    grid.validate()
    if solver is None:
        from molrg.fitting import fit_batched

        solver = fit_batched
        # fit_batched takes n_valid through **options (docs/CONTRACTS.md, molrg/fitting.py).
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
        per_component = grid.samples_per == "component"
        batch = sample_molrg_batch(
            seeds, cell.ambient_dim, [cell.d] * cell.n_components,
            n_samples=None if per_component else cell.samples,
            samples_per_component=cell.samples if per_component else None,
            orthogonal=grid.orthogonal, noise_std=grid.noise_std, device=device,
        )
        shape = (cell.ambient_dim, cell.n_components, cell.d)
        key = shape if pad_samples else (*shape, cell.samples)
        groups.setdefault(key, []).append((cell, batch, seeds))

    done = 0
    results: list[TrialResult] = []
    for (n, K, d, *_), members in groups.items():
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
    return results


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


def run_sweep(
    grid: SweepGrid,
    *,
    device: torch.device | str | None = None,
    callback: Callable[[SweepProgress], bool | None] | None = None,
    max_fits_per_chunk: int = DEFAULT_MAX_FITS_PER_CHUNK,
    solver: Solver | None = None,
) -> SweepReport:
    """Plan chunks, run them in turn, merge and summarise (spec section 7)."""
    results: list[TrialResult] = []
    stopped = False

    def relay(p: SweepProgress) -> bool:
        nonlocal stopped
        stopped = bool(callback(p)) if callback is not None else False
        return stopped

    for chunk in plan_chunks(grid, max_fits_per_chunk):
        results.extend(run_chunk(grid, chunk, device=device, solver=solver, callback=relay))
        if stopped:
            break
    return summarise(grid, results)
