"""ServiceSettings: one settings object for the API process (env prefix ``MOLRG_``)."""

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field

from db.settings import SharedSettings


class ServiceSettings(SharedSettings):
    """Settings of the API process (the shared ones from db.settings); every field is read from ``MOLRG_<FIELD>``."""

    auth_enabled: bool = Field(default=True, description="Require Bearer API keys on /api/v1.")
    default_owner: str = Field(default="local", description="Owner used when auth is disabled.")
    # Limits: checked at the edge, before anything is stored or queued.
    max_rows: int = Field(default=100_000, ge=1, description="Max rows (N) of a dataset.")
    max_ambient_dim: int = Field(default=4096, ge=1, description="Max ambient dimension n.")
    max_components: int = Field(default=64, ge=1, description="Max mixture components K.")
    max_dataset_values: int = Field(default=50_000_000, ge=1, description="Max N*n of a dataset.")
    job_memory_budget_bytes: int = Field(default=8 * 1024**3, ge=1, description=(
        "Largest peak memory of one low-rank fit (molrg.spec.fit_peak_bytes); a bigger fit is a 422."))
    synthetic_budget_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description=(
        "Peak memory one synthetic dataset may take to generate in the API (X, coefficients, noise; float64)."))
    max_samples: int = Field(default=100_000, ge=1, description="Max samples per sample job.")
    max_steps: int = Field(default=1000, ge=1, description="Max sampler steps.")
    max_train_steps: int = Field(default=1_000_000, ge=1, description="Max diffusion training steps.")
    max_restarts: int = Field(default=64, ge=1, description="Max restarts of a fit.")
    max_upload_bytes: int = Field(default=256 * 1024 * 1024, ge=1, description="Max upload size in bytes.")
    max_json_bytes: int = Field(default=1024 * 1024, ge=1, description="Max size of a JSON request body.")
    max_page_size: int = Field(default=200, ge=1, description="Max `limit` of list endpoints.")
    max_sweep_fits: int = Field(default=50_000, ge=1, description="Max fits (cells x trials x methods) of a sweep.")
    # Concurrency (per API process): requests queue for a database slot instead of failing at the pool.
    # 4: on 2 cores, 10 slots served ~20 % more reads/s but /health/live's p99 rose from 30-60 ms to 50-220 ms
    # (threads contending with the event loop for the interpreter); more API processes serve more.
    db_pool_size: int = Field(default=4, ge=1, description=(
        "Pooled database connections, and how many requests run their database work at once; the others wait "
        "in a queue (never at the pool, so a busy database is not reported as an unreachable one)."))
    db_max_overflow: int = Field(default=4, ge=0, description=(
        "Connections beyond db_pool_size, for /health/ready, /metrics and the SSE stream polls."))
    db_pool_timeout_s: float = Field(default=30.0, gt=0, description="Wait for a pooled connection (then 503).")
    db_connect_timeout_s: int = Field(default=5, ge=1, description="PostgreSQL connect timeout (then 503).")
    db_queue_timeout_s: float = Field(default=60.0, gt=0, description=(
        "How long a request may wait in the queue for a database slot before a 503 `overloaded`."))
    api_threads: int = Field(default=40, ge=1, description="Threads that run the synchronous handlers.")
    max_streams_per_owner: int = Field(default=100, ge=1, description=(
        "Open event streams (GET /jobs/{id}/events) per owner and API process; more get 429 + Retry-After."))
    stream_poll_s: float = Field(default=0.5, gt=0, description=(
        "How often the job of an open event stream is read (one read per job, shared by its streams)."))

    @property
    def is_filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_transport_options(self) -> dict[str, Any]:
        """Kombu filesystem folders under the data dir (CONTRACTS.md); nothing for other brokers."""
        if not self.is_filesystem_broker:
            return {}
        messages = str(self.data_dir / "broker" / "messages")
        return {
            "data_folder_in": messages,
            "data_folder_out": messages,
            "processed_folder": str(self.data_dir / "broker" / "processed"),
            "control_folder": str(self.data_dir / "broker" / "control"),
            "store_processed": False,
        }

    def ensure_dirs(self) -> None:
        """Create the data dir (and the broker folders for ``filesystem://``)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for folder in ("data_folder_in", "processed_folder", "control_folder"):
            path = self.broker_transport_options.get(folder)
            if path:
                Path(path).mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> ServiceSettings:
    """The process-wide settings (a dependency, so tests override it)."""
    return ServiceSettings()
