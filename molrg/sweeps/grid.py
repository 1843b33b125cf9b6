"""Sample-complexity sweep grid and its deterministic plan: cells, seeds, chunks (spec section 7).

A sweep is a grid of cells ``(ambient_dim n, K, d, samples)`` with ``trials`` independent trials
each; running and summarising them lives in :mod:`molrg.sweeps.run`.

* Seeds: trial seeds come from a stable hash (blake2b) of ``(sweep seed, n, K, d, samples, trial)``,
  never from Python's ``hash()`` or from the position in a batch, so a trial gives the same result
  whichever chunk, batch or machine ran it.
* Chunks: :func:`plan_chunks` cuts the grid into JSON-able :class:`Chunk` s (cells x trial range)
  that run separately (:func:`molrg.sweeps.run.run_chunk`); every (cell, trial) lands in exactly one
  chunk.
* ``pca`` is only defined for K = 1: for K >= 2 cells it is *skipped* (not an error), so one grid
  can hold K = 1 and K = 2 with ``methods=["pca", "diffusion"]``; a grid where some method applies
  to no cell at all is rejected by :meth:`SweepGrid.validate`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

from molrg import spec

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_FITS_PER_CHUNK",
    "KNOWN_METHODS",
    "Cell",
    "Chunk",
    "SweepGrid",
    "derive_seed",
    "plan_chunks",
    "trial_seed",
]

KNOWN_METHODS = spec.LOWRANK_METHODS
DEFAULT_MAX_FITS_PER_CHUNK = 480  # a chunk is one batched program; 480 fans a paper grid out over workers
# Training memory of a neural chunk (every member of it trains in one program): 256 MiB holds ~12 default
# mlp members at n = 48 (molrg.spec.neural_member_bytes), so a CPU grid fans out over workers; a GPU
# worker's planner is given a larger budget (MOLRG_SWEEP_CHUNK_BYTES).
DEFAULT_CHUNK_BYTES = 256 * 2**20


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
    ``N = K * N_k``), the total ``N`` (``samples_per="total"``) or the ratio ``N_k / d``
    (``samples_per="dim_ratio"``, section 14: ``N_k = ratio * d``). Every component has dim ``d``.
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
    eval_samples: int = 256
    eval_steps: int = 18
    eval_at_steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("ambient_dims", "n_components", "dims", "samples"):
            object.__setattr__(self, name, _ints(name, getattr(self, name)))
        object.__setattr__(self, "methods", tuple(str(m) for m in self.methods))
        object.__setattr__(self, "eval_at_steps", tuple(sorted(int(v) for v in self.eval_at_steps)))
        opts = {str(k): dict(v) for k, v in dict(self.method_options).items()}
        object.__setattr__(self, "method_options", opts)

    def to_spec(self) -> spec.SweepSpec:
        """The grid as the one declaration of a sweep (raises ValueError naming a bad field)."""
        return spec.SweepSpec.model_validate({
            "ambient_dim": list(self.ambient_dims), "n_components": list(self.n_components),
            "dims": list(self.dims), "samples": list(self.samples), "samples_per": self.samples_per,
            "trials": self.trials, "methods": list(self.methods), "method_options": self.method_options,
            "noise_std": self.noise_std, "orthogonal": self.orthogonal,
            "success_threshold": self.success_threshold, "seed": self.seed,
            "eval_samples": self.eval_samples, "eval_steps": self.eval_steps,
            "eval_at_steps": list(self.eval_at_steps),
        })

    @classmethod
    def from_spec(cls, sweep: spec.SweepSpec) -> SweepGrid:
        """The grid of a declared sweep; method options keep only what the user gave."""
        return cls(
            ambient_dims=tuple(sweep.ambient_dims()), n_components=tuple(sweep.components()),
            dims=tuple(sweep.dims), samples=tuple(sweep.samples), samples_per=sweep.samples_per,
            trials=sweep.trials, methods=tuple(sweep.methods),
            method_options={m: o.model_dump(exclude_unset=True) for m, o in sweep.method_options.given().items()},
            noise_std=sweep.noise_std, orthogonal=sweep.orthogonal, success_threshold=sweep.success_threshold,
            seed=sweep.seed, eval_samples=sweep.eval_samples, eval_steps=sweep.eval_steps,
            eval_at_steps=tuple(sweep.eval_at_steps),
        )

    def validate(self) -> SweepGrid:
        """Raise ValueError naming the offending field and a fix (molrg.spec.sweep_errors); return self."""
        spec.raise_for(spec.sweep_errors(self.to_spec()))
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

    def samples_per_component(self, cell: Cell) -> int | None:
        """N_k of a trial in ``cell`` (None when ``samples`` are the total N)."""
        if self.samples_per == "total":
            return None
        return cell.samples * (cell.d if self.samples_per == "dim_ratio" else 1)

    def n_total_samples(self, cell: Cell) -> int:
        """N, the total number of samples of a trial in ``cell``."""
        per_component = self.samples_per_component(cell)
        return cell.samples if per_component is None else per_component * cell.n_components

    def neural_methods(self) -> tuple[str, ...]:
        """The methods that train a network per trial (``neural``)."""
        return tuple(m for m in self.methods if m == "neural")

    def neural_member_bytes(self, ambient_dim: int) -> int:
        """Training memory of one network on the grid's largest trial at ``ambient_dim`` (section 14)."""
        options = spec.NeuralOptions.model_validate(self.method_options.get("neural", {}))
        rows = max(self.n_total_samples(c) for c in self.cells() if c.ambient_dim == ambient_dim)
        return spec.neural_member_bytes(options, ambient_dim, rows)

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
        for name in ("ambient_dims", "n_components", "dims", "samples", "methods", "eval_at_steps"):
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


def plan_chunks(grid: SweepGrid, max_fits_per_chunk: int = DEFAULT_MAX_FITS_PER_CHUNK,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Chunk]:
    """Cut the grid into chunks of at most ``max_fits_per_chunk`` fits (spec sections 7, 14).

    Whole cells are packed together while they fit (so trials of equal shape batch together);
    a cell larger than the budget is split into trial ranges. Every (cell, trial) lands in exactly
    one chunk. A single fit larger than the budget still gets its own chunk. With a ``neural``
    method, a chunk's networks train as one program, so it also holds at most as many trials as
    ``chunk_bytes`` holds networks (:meth:`SweepGrid.neural_member_bytes`, per n).
    """
    grid.validate()
    if max_fits_per_chunk < 1:
        raise ValueError(f"max_fits_per_chunk={max_fits_per_chunk} must be >= 1")
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes={chunk_bytes} must be >= 1")
    members = {n: max(1, chunk_bytes // grid.neural_member_bytes(n)) for n in grid.ambient_dims} \
        if grid.neural_methods() else {}
    chunks: list[Chunk] = []
    pending: list[Cell] = []
    pending_fits = 0
    for cell in grid.cells():
        per_trial = len(grid.methods_for(cell.n_components))
        if per_trial == 0:
            continue
        step = max(1, max_fits_per_chunk // per_trial)  # trials of this cell per chunk
        if members:
            step = min(step, members[cell.ambient_dim])
        if pending and (pending_fits + per_trial * grid.trials > max_fits_per_chunk
                        or (members and (len(pending) + 1) * grid.trials > members[cell.ambient_dim])
                        or (members and pending[-1].ambient_dim != cell.ambient_dim)):
            chunks.append(Chunk(tuple(pending), 0, grid.trials))
            pending, pending_fits = [], 0
        if grid.trials > step:
            for start in range(0, grid.trials, step):
                chunks.append(Chunk((cell,), start, min(grid.trials, start + step)))
            continue
        pending.append(cell)
        pending_fits += per_trial * grid.trials
    if pending:
        chunks.append(Chunk(tuple(pending), 0, grid.trials))
    return chunks
