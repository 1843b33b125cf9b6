"""The ``molrg`` command: ``up`` (API + worker on the embedded default), ``migrate``, ``api-key``."""

import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import select

from db.models import ApiKey
from db.session import make_engine, make_sessionmaker, session_scope
from service.auth import create_api_key
from service.settings import ServiceSettings
from service.supervisor import DataDirInUse, WorkerSupervisor, hold_data_dir, set_parent_death_signal

DEFAULT_KEY_NAME = "default"


def _settings(data_dir: str | None) -> ServiceSettings:
    if data_dir is not None:
        os.environ["MOLRG_DATA_DIR"] = str(data_dir)
        return ServiceSettings(data_dir=Path(data_dir))
    return ServiceSettings()


def _migrate(settings: ServiceSettings) -> None:
    from migrations import upgrade_head

    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_head(settings.database_url)


def _write_key_file(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)


def ensure_default_key(settings: ServiceSettings) -> str | None:
    """Create the default key on first start; returns it (to print once) or None if one exists."""
    key_file = settings.data_dir / "api-key"
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            existing = session.scalar(select(ApiKey).where(
                ApiKey.owner == settings.default_owner, ApiKey.name == DEFAULT_KEY_NAME,
                ApiKey.revoked_at.is_(None)))
            if existing is not None and key_file.exists():
                return None
            _row, key = create_api_key(session, name=DEFAULT_KEY_NAME, owner=settings.default_owner)
    finally:
        engine.dispose()
    _write_key_file(key_file, key)
    return key


DEFAULT_MAX_TASKS_PER_CHILD = 100


def worker_command(settings: ServiceSettings, index: int = 0, beat: bool = True,
                   max_tasks_per_child: int = DEFAULT_MAX_TASKS_PER_CHILD) -> list[str]:
    # A child serves up to max_tasks_per_child jobs, then is replaced: warm matplotlib/torch state is
    # reused between small jobs, and memory a job leaves behind is returned regularly. The parent never
    # touches CUDA, so a child may initialise it whatever this number is.
    cmd = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "gpu,cpu",
           "--pool", "prefork", "--concurrency", "1", "--max-tasks-per-child", str(max_tasks_per_child)]
    if beat:
        cmd += ["-B", "-s", f"{settings.data_dir}/celerybeat-schedule"]
    cmd += ["--without-mingle", "--without-gossip", "-l", "info", "-n", f"molrg{index}@%h"]
    return cmd


def beat_command(settings: ServiceSettings) -> list[str]:
    """The periodic reaper's scheduler as its own process (``molrg up`` supervises it like a worker: an
    embedded ``-B`` beat is a grandchild that a SIGKILLed worker would leave behind)."""
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat",
            "-s", f"{settings.data_dir}/celerybeat-schedule", "-l", "info"]


def worker_env(settings: ServiceSettings, workers: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MOLRG_DATA_DIR": str(settings.data_dir), "MOLRG_DATABASE_URL": settings.database_url,
                "MOLRG_BROKER_URL": settings.broker_url})
    # Share the cores between the worker processes: each torch defaults to every core, and W processes
    # x all cores of spinning OpenMP threads made small jobs up to 6x slower (measured with 2 workers).
    env.setdefault("MOLRG_TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // max(workers, 1))))
    return env


UP_PID_ENV = "MOLRG_UP_PID"


def api_worker_app() -> object:
    """The app of one API process of ``molrg up --api-workers N`` (uvicorn spawns them): it dies with
    ``molrg up``, however that dies, instead of serving on as an orphan."""
    from service.main import create_app

    set_parent_death_signal(int(os.environ[UP_PID_ENV]) if os.environ.get(UP_PID_ENV) else None)
    return create_app()


@click.group()
def cli() -> None:
    """molrg: MoLRG diffusion-model job service."""


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Default ./molrg-data.")
def migrate(data_dir: str | None) -> None:
    """Apply all database migrations."""
    settings = _settings(data_dir)
    _migrate(settings)
    click.echo(f"database at head: {settings.database_url.split('@')[-1]}")


# On SIGTERM uvicorn waits for open requests; an event stream lasts as long as its job (up to an hour), so
# after this grace the streams still open are cancelled (their clients reconnect or poll) and we exit.
SHUTDOWN_GRACE_S = 10


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Default ./molrg-data.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(0, 64), help="Worker processes.")
@click.option("--no-worker", is_flag=True, help="Start only the API.")
@click.option("--api-workers", default=1, show_default=True, type=click.IntRange(1, 64), envvar="MOLRG_API_WORKERS",
              help="API server processes sharing the port (more serve more concurrent clients).")
@click.option("--max-tasks-per-child", default=DEFAULT_MAX_TASKS_PER_CHILD, show_default=True,
              type=click.IntRange(1, 100_000), envvar="MOLRG_MAX_TASKS_PER_CHILD",
              help="Jobs a worker child runs before it is replaced (1: a fresh process per job).")
def up(host: str, port: int, data_dir: str | None, workers: int, no_worker: bool, api_workers: int,
       max_tasks_per_child: int) -> None:
    """Migrate, then run the API and Celery worker process(es) until SIGINT/SIGTERM."""
    import uvicorn

    from service.main import create_app

    settings = _settings(data_dir)
    try:  # one `molrg up` per data dir (its key file, beat schedule, embedded database and broker)
        lock = hold_data_dir(settings.data_dir)
    except DataDirInUse as exc:
        raise click.ClickException(
            f"data dir {settings.data_dir} is already being served by molrg up (pid {exc.pid or 'unknown'}, "
            f"lock {exc.path}); stop that process first, or pass another --data-dir") from None
    if settings.database_url.startswith("sqlite") or settings.is_filesystem_broker:
        settings.ensure_dirs()
    _migrate(settings)
    key = ensure_default_key(settings)
    key_file = settings.data_dir / "api-key"
    if key is not None:
        click.echo(f"created API key (also written to {key_file}, mode 0600):\n{key}")
    else:
        click.echo(f"API key: see {key_file}")
    # Worker subprocesses (this process never imports workers, molrg or torch), restarted if one exits.
    commands = [] if no_worker or workers == 0 else [
        *(worker_command(settings, i, beat=False, max_tasks_per_child=max_tasks_per_child) for i in range(workers)),
        beat_command(settings)]
    supervisor = WorkerSupervisor(commands, worker_env(settings, workers))
    click.echo(f"molrg API docs: http://{host}:{port}/docs")
    if api_workers > 1:
        # uvicorn's supervisor spawns the processes; each builds the app from the environment
        # (MOLRG_DATA_DIR is set by --data-dir above) and handles SIGINT/SIGTERM itself.
        os.environ[UP_PID_ENV] = str(os.getpid())  # api_worker_app: each API process dies with this one
        try:
            uvicorn.run("service.cli:api_worker_app", factory=True, host=host, port=port, workers=api_workers,
                        log_level="info", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
        finally:
            supervisor.stop()
            lock.close()
        return
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="info",
                                           timeout_graceful_shutdown=SHUTDOWN_GRACE_S))
    received: list[int] = []
    # uvicorn handles SIGINT/SIGTERM itself, then re-raises the signal to the handler that was installed
    # before it: make that one only record it, so the workers are stopped and we exit cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        server.run()
    finally:
        supervisor.stop()
        lock.close()


@cli.group(name="api-key")
def api_key() -> None:
    """Manage API keys (stored as SHA-256 hashes)."""


@api_key.command("create")
@click.option("--name", default="cli", show_default=True)
@click.option("--owner", default=None, help="Owner the key's resources belong to (default: MOLRG_DEFAULT_OWNER).")
@click.option("--admin", is_flag=True, help="May see every owner's resources.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def create_key(name: str, owner: str | None, admin: bool, data_dir: str | None) -> None:
    """Create an API key and print it alone on the last line."""
    settings = _settings(data_dir)
    _migrate(settings)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            row, key = create_api_key(session, name=name, owner=owner or settings.default_owner, is_admin=admin)
            click.echo(f"created key id={row.id} name={row.name} owner={row.owner} admin={row.is_admin}")
    finally:
        engine.dispose()
    click.echo(key)


@api_key.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def list_keys(data_dir: str | None) -> None:
    """List keys (prefix, owner, admin, revoked); never the keys themselves."""
    settings = _settings(data_dir)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            for row in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
                click.echo(f"{row.id} {row.prefix}... name={row.name} owner={row.owner} admin={row.is_admin} "
                           f"revoked={row.revoked_at is not None}")
    finally:
        engine.dispose()


@api_key.command("revoke")
@click.argument("key_id")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def revoke_key(key_id: str, data_dir: str | None) -> None:
    """Revoke a key by id (requests with it then get 401)."""
    import uuid

    settings = _settings(data_dir)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            row = session.get(ApiKey, uuid.UUID(key_id))
            if row is None:
                raise click.ClickException(f"no key {key_id}")
            row.revoked_at = datetime.now(UTC)
    finally:
        engine.dispose()
    click.echo(f"revoked {key_id}")


def _register_client_commands() -> None:
    # The client commands (datasets, fit, sample, sweep, jobs, models) live in molrg_client: HTTP only.
    from molrg_client.cli import register

    register(cli)


_register_client_commands()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
