"""Alembic migrations: the only way the schema is created (tests too)."""

from pathlib import Path

from alembic import command
from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    """An Alembic config for this package's scripts against ``url``, independent of the cwd."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_head(url: str) -> None:
    """Apply every migration to the database at ``url``."""
    command.upgrade(alembic_config(url), "head")
