"""Settings both processes read (env prefix ``MOLRG_``), declared once: where the data are, the broker, attempts.

``service.settings.ServiceSettings`` and ``workers.settings.WorkerSettings`` extend this class, so the API
and the workers can never disagree on a shared value's name, type or default.
"""

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SharedSettings(BaseSettings):
    """Fields read by the API and the workers alike; every field is read from ``MOLRG_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MOLRG_", extra="ignore")

    data_dir: Path = Field(default=Path("./molrg-data"), description="Where SQLite, broker files and the key live.")
    database_url: str = Field(default="", description="SQLAlchemy URL; default sqlite:///<data_dir>/molrg.db.")
    broker_url: str = Field(default="filesystem://", description="Celery broker URL.")
    job_max_attempts: int = Field(default=3, ge=1, description=(
        "Attempts before a crashing job (or sweep chunk) fails; stored on each new job, obeyed by workers and reaper."))

    @model_validator(mode="after")
    def _database_under_data_dir(self) -> "SharedSettings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir}/molrg.db"
        return self
