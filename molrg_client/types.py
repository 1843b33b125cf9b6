"""Typed views of the API's JSON resources (dataclasses; ``raw`` keeps the full response)."""

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class _Resource:
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        kwargs = {k: v for k, v in data.items() if k in names}
        for k in list(kwargs):
            if k.endswith("_at") and k != "created_at" or k == "created_at":
                kwargs[k] = _time(kwargs[k])
        return cls(**kwargs, raw=data)  # type: ignore[call-arg]

    def to_json(self) -> dict[str, Any]:
        return self.raw


@dataclass
class Dataset(_Resource):
    id: str
    name: str
    source: str
    n_samples: int
    ambient_dim: int
    has_ground_truth: bool = False
    spec: dict[str, Any] | None = None
    created_at: datetime | None = None
    links: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Job(_Resource):
    id: str
    kind: str
    status: str
    progress: float = 0.0
    progress_detail: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    attempts: int = 0
    max_attempts: int = 0
    cancel_requested: bool = False
    error: str | None = None
    result: dict[str, Any] | None = None
    links: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    @property
    def model_id(self) -> str | None:
        return (self.result or {}).get("model_id")

    @property
    def sample_set_id(self) -> str | None:
        return (self.result or {}).get("sample_set_id")

    @property
    def sweep_id(self) -> str | None:
        return self.params.get("sweep_id") or self.raw.get("sweep_id")


@dataclass
class Model(_Resource):
    id: str
    job_id: str
    dataset_id: str
    method: str
    n_components: int
    dims: list[int]
    ambient_dim: int
    weights: list[float]
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    links: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class SampleSet(_Resource):
    id: str
    job_id: str
    model_id: str
    n_samples: int
    sampler: str
    steps: int
    seed: int
    diagnostics: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    links: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Sweep(_Resource):
    id: str
    job_id: str | None = None
    status: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass
class Event:
    """One server-sent event of ``GET /jobs/{id}/events``: ``status``, ``progress`` or ``end``."""

    event: str
    data: dict[str, Any]
    id: str | None = None
