"""Worker settings from the environment (prefix ``MOLRG_``); nothing connects when they are read."""

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from db.enums import Queue
from db.settings import SharedSettings
from molrg.sweeps.grid import DEFAULT_CHUNK_BYTES, DEFAULT_MAX_FITS_PER_CHUNK

DEFAULT_TIME_LIMITS_S = {"fit": 3600, "sample": 3600, "sweep": 3600}

# Seconds between the soft limit (the job is failed cleanly) and the hard limit (the child is killed).
HARD_LIMIT_GRACE_S = 60


class WorkerSettings(SharedSettings):
    """Everything a worker process needs (the shared fields from db.settings): device, lifecycle timings."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int | None = Field(None, ge=1)  # intra-op CPU threads per job; None: torch's default
    heartbeat_interval_s: float = Field(5.0, gt=0)
    stale_after_s: float = Field(60.0, gt=0)
    republish_after_s: float = Field(120.0, gt=0)
    reap_interval_s: float = Field(15.0, gt=0)
    job_time_limit_s: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_TIME_LIMITS_S))
    queues: list[str] = Field(default_factory=lambda: [q.value for q in Queue])
    sweep_chunk_fits: int = Field(DEFAULT_MAX_FITS_PER_CHUNK, ge=1)  # fits per sweep chunk (workers/sweeps.py)
    # training memory of a neural sweep chunk, whose networks train as one program (molrg.sweeps.grid)
    sweep_chunk_bytes: int = Field(DEFAULT_CHUNK_BYTES, ge=1)
    sweep_cpu_threads: int = Field(1, ge=0)  # torch threads of a sweep chunk on the CPU; 0: torch default

    @model_validator(mode="after")
    def _time_limits(self) -> "WorkerSettings":
        self.job_time_limit_s = {**DEFAULT_TIME_LIMITS_S, **self.job_time_limit_s}
        return self

    @property
    def broker_is_filesystem(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_dirs(self) -> dict[str, Path]:
        """Folders of the ``filesystem://`` transport, all under ``data_dir/broker``."""
        root = self.data_dir / "broker"
        return {"messages": root / "messages", "processed": root / "processed", "control": root / "control"}

    def time_limit_s(self, kind: str) -> int:
        """Soft time limit of one job of ``kind``."""
        return int(self.job_time_limit_s.get(kind, DEFAULT_TIME_LIMITS_S["fit"]))

    def broker_transport_options(self) -> dict[str, Any]:
        """Kombu transport options: shared folders for ``filesystem://``, a visibility timeout otherwise."""
        if self.broker_is_filesystem:
            dirs = self.broker_dirs
            return {
                "data_folder_in": str(dirs["messages"]),
                "data_folder_out": str(dirs["messages"]),
                "processed_folder": str(dirs["processed"]),
                "control_folder": str(dirs["control"]),
                "store_processed": False,
                # The folder is polled; 1 s (kombu's default) would add up to a second to every job.
                "polling_interval": 0.2,
            }
        # Redis/SQS redeliver an unacked message after visibility_timeout: keep it above the longest
        # job (hard limit included) so a running job is never delivered twice by the broker itself.
        longest = max(self.job_time_limit_s.values()) + HARD_LIMIT_GRACE_S
        return {"visibility_timeout": longest + 600}

    def ensure_dirs(self) -> None:
        """Create ``data_dir`` (and the broker folders for ``filesystem://``)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.broker_is_filesystem:
            for path in self.broker_dirs.values():
                path.mkdir(parents=True, exist_ok=True)
