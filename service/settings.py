"""ServiceSettings: one settings object for the API process (env prefix ``MOLRG_``)."""

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings of the API process; every field is read from ``MOLRG_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MOLRG_", extra="ignore")

    data_dir: Path = Field(default=Path("./molrg-data"), description="Where SQLite, broker files and the key live.")
    database_url: str = Field(default="", description="SQLAlchemy URL; default sqlite:///<data_dir>/molrg.db.")
    broker_url: str = Field(default="filesystem://", description="Celery broker URL.")
    auth_enabled: bool = Field(default=True, description="Require Bearer API keys on /api/v1.")
    default_owner: str = Field(default="local", description="Owner used when auth is disabled.")
    # Limits: checked at the edge, before anything is stored or queued.
    max_rows: int = Field(default=100_000, ge=1, description="Max rows (N) of a dataset.")
    max_ambient_dim: int = Field(default=4096, ge=1, description="Max ambient dimension n.")
    max_components: int = Field(default=64, ge=1, description="Max mixture components K.")
    max_dataset_values: int = Field(default=50_000_000, ge=1, description="Max N*n of a dataset.")
    max_samples: int = Field(default=100_000, ge=1, description="Max samples per sample job.")
    max_steps: int = Field(default=1000, ge=1, description="Max sampler steps.")
    max_train_steps: int = Field(default=1_000_000, ge=1, description="Max diffusion training steps.")
    max_restarts: int = Field(default=64, ge=1, description="Max restarts of a fit.")
    max_upload_bytes: int = Field(default=256 * 1024 * 1024, ge=1, description="Max upload size in bytes.")
    max_json_bytes: int = Field(default=1024 * 1024, ge=1, description="Max size of a JSON request body.")
    max_page_size: int = Field(default=200, ge=1, description="Max `limit` of list endpoints.")
    job_max_attempts: int = Field(default=3, ge=1, description="Attempts before a crashing job fails.")
    max_sweep_fits: int = Field(default=50_000, ge=1, description="Max fits (cells x trials x methods) of a sweep.")

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> "ServiceSettings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir}/molrg.db"
        return self

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
