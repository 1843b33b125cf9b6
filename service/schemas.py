"""Request and response models of the HTTP API (validated at the edge, documented in OpenAPI)."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from db.enums import JobKind, JobStatus
from molrg import spec


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UTCDateTime = Annotated[datetime, AfterValidator(_as_utc)]
T = TypeVar("T")



class _Request(BaseModel):
    # Unknown fields are an error, not silently dropped.
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---------------------------------------------------------------- requests (declared once in molrg.spec)

SyntheticSpec = spec.SyntheticSpec
SampleCreate = spec.SampleSpec
# A fit request is the fit job's declaration: one variant per method, told apart by ``method``.
FitCreate = spec.FitSpec
FIT_ADAPTER: TypeAdapter[spec.FitVariant] = TypeAdapter(spec.FitSpec)


class DatasetCreate(_Request):
    """Generate a synthetic MoLRG dataset with stored ground truth."""

    name: str = Field(default="synthetic", min_length=1, max_length=200)
    synthetic: SyntheticSpec

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "two planes", "synthetic": {"ambient_dim": 48, "dims": [4, 4], "n_samples": 20,
                                                     "orthogonal": True, "noise_std": 0.0, "seed": 0}}
            ]
        },
    )


# ---------------------------------------------------------------- responses


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` as ``cursor`` to get the next (null at the end)."""

    items: list[T]
    next_cursor: str | None = None


class DatasetRead(_Response):
    id: uuid.UUID
    name: str
    source: str
    n_samples: int
    ambient_dim: int
    has_ground_truth: bool
    spec: dict[str, Any] | None = None
    created_at: UTCDateTime
    links: dict[str, str] = Field(default_factory=dict)


class JobRead(_Response):
    id: uuid.UUID
    kind: JobKind
    status: JobStatus
    progress: float = Field(description="Fraction done, 0..1 (progress_detail has the counts).")
    progress_detail: dict[str, Any] | None = None
    params: dict[str, Any]
    created_at: UTCDateTime
    queued_at: UTCDateTime | None = None
    started_at: UTCDateTime | None = None
    finished_at: UTCDateTime | None = None
    duration_s: float | None = Field(default=None, description="finished - started (or elapsed while running).")
    attempts: int
    max_attempts: int
    cancel_requested: bool
    error: str | None = None
    result: dict[str, Any] | None = None
    links: dict[str, str] = Field(default_factory=dict)


class JobProgressEvent(_Response):
    """The data of a ``progress`` server-sent event (``GET /jobs/{id}/events``)."""

    id: uuid.UUID
    status: JobStatus
    progress: float = Field(description="Fraction done, 0..1.")
    progress_detail: dict[str, Any] | None = Field(
        default=None, description="Latest step/total_steps/loss of a fit, or fits/chunks done of a sweep.")


class ModelRead(_Response):
    id: uuid.UUID
    job_id: uuid.UUID
    dataset_id: uuid.UUID
    method: str
    n_components: int
    dims: list[int]
    ambient_dim: int
    weights: list[float]
    config: dict[str, Any]
    seed: int
    metrics: dict[str, Any]
    created_at: UTCDateTime
    links: dict[str, str] = Field(default_factory=dict)


class SampleSetRead(_Response):
    id: uuid.UUID
    job_id: uuid.UUID
    model_id: uuid.UUID
    n_samples: int
    sampler: str
    steps: int
    seed: int
    diagnostics: dict[str, Any]
    created_at: UTCDateTime
    links: dict[str, str] = Field(default_factory=dict)


class MetricPointRead(BaseModel):
    step: int
    value: float


class MetricHistory(BaseModel):
    """A per-step history, downsampled evenly (first and last points kept)."""

    job_id: uuid.UUID
    name: str
    total_points: int
    points: list[MetricPointRead]
    names: list[str] = Field(default_factory=list, description="All metric names recorded for the job.")


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    errors: list[dict[str, str]] | None = Field(default=None, description="The first field errors (field, reason).")
    errors_total: int | None = Field(default=None, description="How many field errors there were in all.")


class HealthRead(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
