"""Sampling from a fitted model (spec section 8)."""

from __future__ import annotations

import uuid

from pydantic import (
    ConfigDict,
    Field,
)

from molrg.spec.base import Sampler, Seed, _Spec

# ---------------------------------------------------------------- sampling (section 8)


class SampleSpec(_Spec):
    """Draw samples from a fitted model by reverse-time integration."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"n_samples": 100, "sampler": "heun", "steps": 18, "seed": 0}]})

    n_samples: int = Field(100, ge=1, le=1_000_000, description="Number of samples.")
    sampler: Sampler = Field("heun", description="heun (EDM deterministic), ddim, or sde (Euler-Maruyama).")
    steps: int = Field(18, ge=1, le=1000, description="Sampler steps.")
    seed: Seed = 0


class SampleJob(SampleSpec):
    """``Job.params`` of a sample job: the model and the sample spec."""

    model_id: uuid.UUID
