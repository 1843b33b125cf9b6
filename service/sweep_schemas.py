"""Sweep request/response models and the sweep's edge validation (grid size in plain Python, no torch).

The rules mirror ``molrg.sweeps.grid.SweepGrid.validate`` so a sweep the API accepts never fails in the
worker: ``pca`` fits one subspace, so it runs on the K = 1 cells of a grid (and is refused when the
grid has none); orthogonal subspaces need ``K * d <= n``; ``d < n``.
"""

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.errors import FieldError, ValidationFailed
from service.schemas import JobRead, UTCDateTime
from service.settings import ServiceSettings
from service.validation import FIT_OPTIONS

KNOWN_METHODS = ("pca", "subspace_clustering", "diffusion")

PAPER_GRID_EXAMPLE: dict[str, Any] = {
    "ambient_dim": 48, "n_components": 1, "dims": [2, 3, 4, 5, 6, 7, 8], "samples": list(range(2, 16)),
    "samples_per": "component", "noise_std": 0.0, "orthogonal": True, "trials": 20,
    "methods": ["pca", "diffusion"], "method_options": {},
    "success_threshold": 0.5, "seed": 0,
}


class SweepCreate(BaseModel):
    """A sample-complexity grid: every (n, K, d, N) cell runs ``trials`` independent trials per method."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PAPER_GRID_EXAMPLE]})

    ambient_dim: int | list[int] = Field(default=48, description="Ambient dimension n, one value or a list.")
    n_components: int | list[int] = Field(default=1, description="K subspaces, one value or a list.")
    dims: list[int] = Field(min_length=1, max_length=256, description="Intrinsic dimensions d (rows).")
    samples: list[int] = Field(min_length=1, max_length=1024,
                               description="Sample sizes (columns): N_k per component or total N.")
    samples_per: Literal["component", "total"] = Field(
        default="component", description="'component': samples are N_k (N = K * N_k); 'total': samples are N.")
    noise_std: float = Field(default=0.0, ge=0.0, le=1e6, description="Std of isotropic noise added to the data.")
    orthogonal: bool = Field(default=True, description="Mutually orthogonal subspaces (needs K * d <= n).")
    trials: int = Field(default=20, ge=1, description="Independent trials per cell.")
    methods: list[str] = Field(default_factory=lambda: ["pca"], min_length=1, max_length=3,
                               description="Fit methods, run on the same data per trial: "
                                           "pca (K = 1 cells), subspace_clustering, diffusion.")
    method_options: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                                      description="Options per method, as for fits.")
    success_threshold: float = Field(default=0.5, gt=0.0, le=1e6,
                                     description="A trial succeeds when its recovery error is below this.")
    seed: int = Field(default=0, ge=0, le=2**63 - 1, description="Sweep seed; trial seeds derive from it.")

    def ambient_dims(self) -> list[int]:
        return self.ambient_dim if isinstance(self.ambient_dim, list) else [self.ambient_dim]

    def components(self) -> list[int]:
        return self.n_components if isinstance(self.n_components, list) else [self.n_components]

    def methods_for(self, K: int) -> list[str]:
        """Methods that run on a K-component cell (pca only for K = 1), as in the engine."""
        return [m for m in self.methods if m != "pca" or K == 1]

    def n_fits(self) -> int:
        """Fits in the grid: cells x trials x applicable methods."""
        per_n = len(self.dims) * len(self.samples) * self.trials
        return len(self.ambient_dims()) * sum(per_n * len(self.methods_for(K)) for K in self.components())


def _list_errors(name: str, values: list[int], minimum: int, errors: list[FieldError],
                 limit: tuple[str, int] | None = None) -> None:
    if not values:
        errors.append(FieldError(name, "needs at least one value"))
    if len(set(values)) != len(values):
        errors.append(FieldError(name, f"{values} has duplicates; list each value once"))
    for i, v in enumerate(values):
        if v < minimum:
            errors.append(FieldError(f"{name}[{i}]" if len(values) > 1 else name, f"must be >= {minimum}, got {v}"))
        elif limit is not None and v > limit[1]:
            errors.append(FieldError(f"{name}[{i}]" if len(values) > 1 else name,
                                     f"{v} exceeds the limit {limit[0]}={limit[1]}"))


def validate_sweep(req: SweepCreate, settings: ServiceSettings) -> int:
    """Cross-field rules and limits of a sweep; returns its number of fits (raises ValidationFailed)."""
    errors: list[FieldError] = []
    ns, Ks = req.ambient_dims(), req.components()
    _list_errors("ambient_dim", ns, 2, errors, ("max_ambient_dim", settings.max_ambient_dim))
    _list_errors("n_components", Ks, 1, errors, ("max_components", settings.max_components))
    _list_errors("dims", req.dims, 1, errors)
    _list_errors("samples", req.samples, 1, errors)
    for i, m in enumerate(req.methods):
        if m not in KNOWN_METHODS:
            errors.append(FieldError(f"methods[{i}]", f"unknown method {m!r}; choose from {', '.join(KNOWN_METHODS)}"))
    if len(set(req.methods)) != len(req.methods):
        errors.append(FieldError("methods", f"{req.methods} has duplicates"))
    if "pca" in req.methods and Ks and 1 not in Ks:
        errors.append(FieldError("methods", f"pca fits one subspace (K = 1) but n_components={Ks}; "
                                            "use subspace_clustering for K >= 2"))
    for method, options in req.method_options.items():
        if method not in req.methods:
            errors.append(FieldError(f"method_options.{method}", f"{method!r} is not in methods={req.methods}"))
            continue
        known = FIT_OPTIONS.get(method, {})
        for key, value in options.items():
            check = known.get(key)
            if check is None:
                allowed = ", ".join(sorted(known)) or "none"
                errors.append(FieldError(f"method_options.{method}.{key}",
                                         f"unknown option for method {method} (known: {allowed})"))
            elif (reason := check(value, settings)) is not None:
                errors.append(FieldError(f"method_options.{method}.{key}", reason))
    if errors:
        raise ValidationFailed(errors)
    dmax, smax, Kmax = max(req.dims), max(req.samples), max(Ks)
    for n in ns:
        if dmax >= n:
            errors.append(FieldError("dims", f"d={dmax} must be < ambient_dim={n}"))
        for K in Ks:
            if req.orthogonal and K * dmax > n:
                errors.append(FieldError("dims", f"n_components*d={K}*{dmax}={K * dmax} exceeds ambient_dim={n}; "
                                                 "orthogonal subspaces need K*d <= n (or set orthogonal=false)"))
    n_rows = smax * Kmax if req.samples_per == "component" else smax
    if n_rows > settings.max_rows:
        errors.append(FieldError("samples", f"N={n_rows} samples per trial exceeds the limit max_rows={settings.max_rows}"))
    n_fits = req.n_fits()
    if n_fits > settings.max_sweep_fits:
        errors.append(FieldError("trials", f"the grid holds {n_fits} fits (cells x trials x methods), over the "
                                           f"limit max_sweep_fits={settings.max_sweep_fits}; reduce trials, dims, "
                                           "samples, methods or the lists of n and K"))
    if errors:
        raise ValidationFailed(errors)
    return n_fits


# ---------------------------------------------------------------- responses


class SweepJobRead(JobRead):
    """The accepted sweep job, with its sweep id and the number of fits it holds."""

    sweep_id: uuid.UUID
    n_fits: int


class SweepProgress(BaseModel):
    chunks_done: int
    chunks_total: int | None = Field(description="Null until the worker has planned the sweep.")
    fits_done: int
    fits_total: int
    fraction: float


class SweepCell(BaseModel):
    method: str
    n_components: int
    ambient_dim: int
    d: int
    samples: int
    trials: int
    successes: int
    success_rate: float
    error_median: float | None
    error_p90: float | None
    error_mean: float | None = None
    fit_seconds_mean: float | None = None


class LinearFit(BaseModel):
    slope: float
    intercept: float
    r2: float | None
    n_points: int


class TransitionRow(BaseModel):
    d: int
    n_star: int | None = Field(description="Smallest N (or N_k) with success rate >= 0.5.")
    n_star_logistic: float | None = Field(description="N where the logistic fit crosses 0.5.")
    logistic_width: float | None = None
    logistic_status: str | None = None


class Transition(BaseModel):
    """N*(d) per d and the lines N* = slope * d + intercept of one (method, K, n)."""

    method: str
    n_components: int
    ambient_dim: int
    rows: list[TransitionRow]
    linear_fit: LinearFit | None
    linear_fit_logistic: LinearFit | None = None


class HeatmapRef(BaseModel):
    method: str
    n_components: int
    ambient_dim: int
    width: int
    height: int
    url: str


class ChunkRead(BaseModel):
    """One chunk of the sweep: which worker ran it, how many attempts it took."""

    model_config = ConfigDict(from_attributes=True)

    index: int
    status: str
    attempts: int
    n_fits: int
    worker: str | None = None
    error: str | None = None
    started_at: UTCDateTime | None = None
    finished_at: UTCDateTime | None = None


class SweepRead(BaseModel):
    """A sweep: spec, status, progress, and the (partial until ``final``) results."""

    id: uuid.UUID
    job_id: uuid.UUID
    status: str
    error: str | None = None
    spec: dict[str, Any]
    n_fits: int
    progress: SweepProgress
    final: bool = Field(description="True once every chunk is in; before that the results are partial.")
    cells: list[SweepCell]
    transitions: list[Transition]
    heatmaps: list[HeatmapRef]
    chunks: list[ChunkRead] = Field(default_factory=list, description="Chunk status, attempts and worker.")
    created_at: UTCDateTime
    finished_at: UTCDateTime | None = None
    links: dict[str, str] = Field(default_factory=dict)


class SweepSummary(BaseModel):
    """A sweep in a listing (no results)."""

    id: uuid.UUID
    job_id: uuid.UUID
    status: str
    n_fits: int
    progress: SweepProgress
    created_at: UTCDateTime
    links: dict[str, str] = Field(default_factory=dict)
