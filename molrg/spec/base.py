"""Names, seeds and the issue type shared by every declaration (stdlib + pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

# ---------------------------------------------------------------- names

Method = Literal["diffusion", "pca", "subspace_clustering", "neural", "empirical"]
LOWRANK_METHODS: tuple[str, ...] = ("diffusion", "pca", "subspace_clustering")
NEURAL_METHODS: tuple[str, ...] = ("neural", "empirical")
METHODS: tuple[str, ...] = get_args(Method)
Sampler = Literal["heun", "ddim", "sde"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)
Schedule = Literal["vp", "ve", "edm"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
Weighting = Literal["unit", "edm"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)
DiffusionModel = Literal["auto", "linear", "hardmax", "softmax"]
DiffusionInit = Literal["random", "data", "pca", "ksubspaces"]
KSubspacesInit = Literal["data", "random"]
Optimizer = Literal["adam", "sgd"]
Retraction = Literal["qr", "polar"]
Architecture = Literal["mlp", "unet"]
LRSchedule = Literal["cosine", "constant"]
SamplesPer = Literal["component", "total", "dim_ratio"]
SweepMethod = Literal["diffusion", "pca", "subspace_clustering", "neural", "empirical", "exact"]
# Sweep methods scored by their samples (spec sections 13-14): a trained network and the two closed-form
# references that bracket it, the empirical denoiser (memorises) and the exact posterior (generalises).
SAMPLE_SCORED_METHODS: tuple[str, ...] = ("neural", "empirical", "exact")

SEED_MAX = 2**63 - 1  # BIGINT on every backend
Seed = Annotated[int, Field(ge=0, le=SEED_MAX, description="Seed of the job's torch.Generator.")]
MAX_COMPONENTS = 64
MAX_AMBIENT_DIM = 4096


class FieldIssue(NamedTuple):
    """One broken rule: the dotted field path and why (e.g. ``dims[1]``, ``must be < n = 12``)."""

    field: str
    reason: str


class _Spec(BaseModel):
    # Unknown fields are an error, not silently dropped; specs are values.
    model_config = ConfigDict(extra="forbid", frozen=True)


def raise_for(issues: list[FieldIssue]) -> None:
    """ValueError listing every issue (the library's way to report them)."""
    if issues:
        raise ValueError("; ".join(f"{i.field}: {i.reason}" for i in issues))
