"""Sweep request/response models and the sweep's edge validation (plain Python, no torch).

The request is :class:`molrg.spec.SweepSpec` and its rules are :func:`molrg.spec.sweep_errors`, the same
the worker's ``SweepGrid.validate`` applies, so a sweep the API accepts never fails in the worker; this
module adds the deployment's limits.
"""

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from molrg import spec
from service.errors import FieldError, ValidationFailed
from service.schemas import JobRead, UTCDateTime
from service.settings import ServiceSettings

PAPER_GRID_EXAMPLE: dict[str, Any] = {
    "ambient_dim": 48, "n_components": 1, "dims": [2, 3, 4, 5, 6, 7, 8], "samples": list(range(2, 16)),
    "samples_per": "component", "noise_std": 0.0, "orthogonal": True, "trials": 20,
    "methods": ["pca", "diffusion"], "method_options": {},
    "success_threshold": 0.5, "seed": 0,
}


class SweepCreate(spec.SweepSpec):
    """A sample-complexity grid: every (n, K, d, N) cell runs ``trials`` independent trials per method."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [PAPER_GRID_EXAMPLE]})


def validate_sweep(req: SweepCreate, settings: ServiceSettings) -> int:
    """Cross-field rules and limits of a sweep; returns its number of fits (raises ValidationFailed)."""
    issues = spec.sweep_errors(req)
    if not issues:
        for name, values, limit_name, limit in (
            ("ambient_dim", req.ambient_dims(), "max_ambient_dim", settings.max_ambient_dim),
            ("n_components", req.components(), "max_components", settings.max_components),
        ):
            if max(values) > limit:
                issues.append(spec.FieldIssue(name, f"{max(values)} exceeds the limit {limit_name}={limit}"))
        if req.max_rows() > settings.max_rows:
            issues.append(spec.FieldIssue(
                "samples", f"N={req.max_rows()} samples per trial exceeds the limit max_rows={settings.max_rows}"))
        n_fits = req.n_fits()
        if n_fits > settings.max_sweep_fits:
            issues.append(spec.FieldIssue(
                "trials", f"the grid holds {n_fits} fits (cells x trials x methods), over the limit "
                          f"max_sweep_fits={settings.max_sweep_fits}; reduce trials, dims, samples, methods "
                          "or the lists of n and K"))
    if issues:
        raise ValidationFailed([FieldError(i.field, i.reason) for i in issues])
    return req.n_fits()


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
    memorised_fraction: float | None = Field(None, description="Sample-scored methods (neural, empirical, exact): "
                                                                "median over trials of the fraction of samples "
                                                                "that copy a training point; null otherwise.")
    generalisation_score: float | None = Field(None, description="Median over trials of the fraction of samples "
                                                                  "on the true support and not memorised.")
    on_support_fraction: float | None = Field(None, description="Median over trials of the fraction of samples "
                                                                 "within one true subspace.")
    by_step: dict[str, dict[str, float]] | None = Field(
        None, description="neural with eval_at_steps: per training step, the median of each score over trials.")


class LinearFit(BaseModel):
    slope: float
    intercept: float
    r2: float | None
    n_points: int


class Collapse(BaseModel):
    n_star_max_over_min: float | None = Field(description="max / min of n_star over d; null when < 2 crossed.")
    logistic_max_over_min: float | None = Field(description="The same for the logistic crossings.")
    crossed: int = Field(description="d's whose curve crossed inside the grid.")
    rows: int


class TransitionRow(BaseModel):
    d: int
    n_star: int | None = Field(description="Smallest N, N_k or N_k / d (the sweep's samples) with success rate "
                                           ">= 0.5; for sample-scored methods, with median generalisation >= 0.5.")
    n_star_logistic: float | None = Field(description="Where the logistic fit crosses 0.5 (on a dim_ratio axis "
                                                      "fitted in log2 of the ratio).")
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
    collapse: Collapse | None = Field(None, description="dim_ratio sweeps: how far the thresholds of the d's lie "
                                                        "apart (max / min; 1 = the curves collapse).")


class HeatmapRef(BaseModel):
    method: str
    n_components: int
    ambient_dim: int
    width: int
    height: int
    url: str


class FigureRef(BaseModel):
    kind: str = Field(description="curves: generalisation and memorised fraction against N_k / d per d.")
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
    progress: dict[str, Any] | None = Field(None, description="The running attempt's last report: fits_done, "
                                                              "and while its networks train step, total_steps, "
                                                              "networks and loss.")


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
    figures: list[FigureRef] = Field(default_factory=list, description="Other worker-rendered figures (curves).")
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
