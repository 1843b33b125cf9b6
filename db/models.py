"""Tables: API keys, datasets, jobs, fitted models, sample sets, per-step metrics, sweeps.

Arrays are stored as ``.npy``/``.npz`` bytes in deferred columns, so listing rows never loads them.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column

from db.base import Base, CreatedAtMixin, JSONType, new_id
from db.enums import JobKind, JobStatus

# Any seed the API accepts (0 .. 2^63-1): BIGINT on PostgreSQL; a SQLite INTEGER already holds 8 bytes.
SEED = BigInteger().with_variant(Integer, "sqlite")


class ApiKey(CreatedAtMixin, Base):
    """A bearer key; only its SHA-256 is stored. ``owner`` scopes every resource."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Dataset(CreatedAtMixin, Base):
    """An (N, n) float array, uploaded or generated; synthetic ones keep their ground truth."""

    __tablename__ = "datasets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # "synthetic" | "upload"
    n_samples: Mapped[int] = mapped_column(Integer)
    ambient_dim: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    has_ground_truth: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # (N, n) float64 .npy; labels (N,) int64 .npy; true bases .npz with U_0..U_{K-1}.
    data_npy: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, default=None))
    labels_npy: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, default=None))
    bases_npz: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, default=None))

    __table_args__ = (UniqueConstraint("owner", "idempotency_key", name="uq_datasets_owner_idem"),)


class Job(CreatedAtMixin, Base):
    """The record of one unit of work; Celery only carries its id."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(200))
    kind: Mapped[JobKind] = mapped_column(String(20))
    status: Mapped[JobStatus] = mapped_column(String(20), default=JobStatus.queued)
    queue: Mapped[str] = mapped_column(String(50), default="gpu")
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    queued_at: Mapped[datetime | None] = mapped_column(default=None)  # last (re)publish
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idem"),
    )


class FittedModel(CreatedAtMixin, Base):
    """Bases and weights of a fitted MoLRG denoiser; exactly one per fit job."""

    __tablename__ = "models"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(40))
    n_components: Mapped[int] = mapped_column(Integer)
    ambient_dim: Mapped[int] = mapped_column(Integer)
    dims: Mapped[list[int]] = mapped_column(JSONType)
    weights: Mapped[list[float]] = mapped_column(JSONType)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    seed: Mapped[int] = mapped_column(SEED)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    bases_npz: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    # A neural model's denoising weights as safetensors bytes (molrg.neural.NeuralDiffusion.state_dict);
    # NULL for low-rank and empirical models.
    weights_safetensors: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, default=None))


class SampleSet(CreatedAtMixin, Base):
    """Samples drawn from a fitted model, with their diagnostics; exactly one per sample job."""

    __tablename__ = "sample_sets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    n_samples: Mapped[int] = mapped_column(Integer)
    sampler: Mapped[str] = mapped_column(String(20))
    steps: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(SEED)
    diagnostics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    samples_npy: Mapped[bytes] = deferred(mapped_column(LargeBinary))


class MetricPoint(Base):
    """One value of a per-step history, keyed by (job, name, step): rewriting it is idempotent."""

    __tablename__ = "metrics"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class Sweep(CreatedAtMixin, Base):
    """A sample-complexity sweep: one per sweep job; its grid runs as chunk rows on any worker.

    ``report`` is the latest summary (cells, transitions, linear fits) of the trials stored so far;
    ``report_fits`` is how many fits it covers, so a slower writer never replaces a newer report.
    """

    __tablename__ = "sweeps"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    fits_total: Mapped[int] = mapped_column(Integer)
    fits_done: Mapped[int] = mapped_column(Integer, default=0)
    chunks_total: Mapped[int | None] = mapped_column(Integer, default=None)  # None until planned
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    max_fits_per_chunk: Mapped[int | None] = mapped_column(Integer, default=None)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    report_fits: Mapped[int] = mapped_column(Integer, default=0)
    report_final: Mapped[bool] = mapped_column(Boolean, default=False)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class SweepChunk(Base):
    """A runnable piece of a sweep (cells x trial range); claimed, heartbeated and reaped on its own."""

    __tablename__ = "sweep_chunks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    sweep_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    n_fits: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # db.sweeps.ChunkStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    queued_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # the running attempt's last report: fits done and, while its networks train, step / total_steps
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)

    __table_args__ = (
        UniqueConstraint("sweep_id", "index", name="uq_sweep_chunks_sweep_index"),
        Index("ix_sweep_chunks_status_heartbeat", "status", "heartbeat_at"),
    )


class SweepTrial(Base):
    """One (cell, trial, method) outcome; the unique grid key makes a re-run chunk insert nothing new."""

    __tablename__ = "sweep_trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sweep_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    chunk_index: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(40))
    ambient_dim: Mapped[int] = mapped_column(Integer)
    n_components: Mapped[int] = mapped_column(Integer)
    d: Mapped[int] = mapped_column(Integer)
    samples: Mapped[int] = mapped_column(Integer)
    trial: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[float] = mapped_column(Float)
    mean_error: Mapped[float | None] = mapped_column(Float, default=None)
    success: Mapped[bool] = mapped_column(Boolean)
    fit_seconds: Mapped[float] = mapped_column(Float)
    # sample-scored methods (neural, empirical, exact; spec section 13); NULL for the low-rank methods
    memorised_fraction: Mapped[float | None] = mapped_column(Float, default=None)
    generalisation_score: Mapped[float | None] = mapped_column(Float, default=None)
    on_support_fraction: Mapped[float | None] = mapped_column(Float, default=None)
    # neural with eval_at_steps: {step: {score: value}} after each recorded training step
    scores_by_step: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)

    __table_args__ = (
        UniqueConstraint("sweep_id", "method", "ambient_dim", "n_components", "d", "samples", "trial",
                         name="uq_sweep_trials_key"),
    )


class SweepHeatmap(Base):
    """The success-rate heatmap PNG of one (method, K, n) of a sweep, rendered by the worker."""

    __tablename__ = "sweep_heatmaps"

    sweep_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(40), primary_key=True)
    n_components: Mapped[int] = mapped_column(Integer, primary_key=True)
    ambient_dim: Mapped[int] = mapped_column(Integer, primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    png: Mapped[bytes] = deferred(mapped_column(LargeBinary))


class SweepFigure(Base):
    """A worker-rendered PNG of one (K, n) of a sweep other than the heatmaps, e.g. ``curves``: the
    generalisation and memorised fraction against N_k / d, one curve per d (spec section 14)."""

    __tablename__ = "sweep_figures"

    sweep_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    n_components: Mapped[int] = mapped_column(Integer, primary_key=True)
    ambient_dim: Mapped[int] = mapped_column(Integer, primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    png: Mapped[bytes] = deferred(mapped_column(LargeBinary))


class Plot(Base):
    """A PNG figure of a job's result (fit: ``loss``, ``projection``, ``jacobian``; sample: ``grid``, ...),
    rendered by the worker when the job finishes; one per (job, kind)."""

    __tablename__ = "plots"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    png: Mapped[bytes] = deferred(mapped_column(LargeBinary))
