"""Per-process lazy resources: settings, engine/sessionmaker (created after fork) and the torch device."""

import importlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_sessionmaker
from workers.settings import WorkerSettings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_settings: WorkerSettings | None = None
_engine: Engine | None = None
_maker: sessionmaker[Session] | None = None
_pid: int | None = None
_device: torch.device | None = None


def set_settings(settings: WorkerSettings) -> None:
    """Use these settings in this process (the Celery app registers its own)."""
    global _settings
    _settings = settings


def get_settings() -> WorkerSettings:
    """The process's settings (from the environment unless set)."""
    global _settings
    if _settings is None:
        _settings = WorkerSettings()
    return _settings


def get_sessionmaker() -> sessionmaker[Session]:
    """The sessionmaker of this process; a forked child never reuses its parent's connections."""
    global _engine, _maker, _pid
    with _lock:
        if _maker is None or _pid != os.getpid():
            if _engine is not None and _pid != os.getpid():
                _engine.dispose(close=False)  # leave the parent's sockets to the parent
            _engine = make_engine(get_settings().database_url)
            _maker = make_sessionmaker(_engine)
            _pid = os.getpid()
        return _maker


def get_device() -> torch.device:
    """CUDA when configured/available, else CPU; decided lazily so the parent never initialises CUDA."""
    global _device
    if _device is None:
        threads = get_settings().torch_threads
        if threads:
            torch.set_num_threads(threads)
        choice = get_settings().device
        if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
            _device = torch.device("cuda")
        else:
            _device = torch.device("cpu")
        logger.info("worker pid %d uses device %s", os.getpid(), _device)
    return _device


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op CPU threads (0: leave as is), then restore the previous number.

    A worker child serves many jobs (``--max-tasks-per-child``), so a per-job choice must not leak.
    """
    previous = torch.get_num_threads()
    if n > 0 and n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


# Imported in the parent before the pool forks, so each new child starts warm: torch imports sympy lazily on the first broadcast (~1.5 s per child otherwise).
# Imports only: running torch ops here would start thread pools that do not survive fork.
PRELOAD_MODULES = (
    "torch._refs",
    "torch.fx.experimental.symbolic_shapes",
    "molrg.lowrank.estimator",
    "molrg.lowrank.fitting",
    "molrg.analysis.diagnostics",
    "molrg.sampling.samplers",
    "molrg.lowrank.analytic",
    "molrg.analysis.metrics",
    "molrg.neural",  # neural and empirical jobs (workers/neural.py)
    "molrg.analysis.scores",
    "workers.neural",
    # Figures are rendered after each job (workers/figures.py): import them once, not per child.
    "molrg.analysis.jacobian",
    "molrg.analysis.editing",
    "workers.figures",
)


def preload() -> None:
    """Import the modules every job needs (no CUDA, no torch ops) and warm the figure code: call in the
    parent before forking."""
    for name in PRELOAD_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            logger.warning("preload: cannot import %s", name, exc_info=True)
    try:
        from workers import figures

        figures.warm()
    except Exception:  # a warm-up is an optimisation only
        logger.warning("preload: figure warm-up failed", exc_info=True)


def reset() -> None:
    """Forget everything (tests, or after settings change)."""
    global _settings, _engine, _maker, _pid, _device
    with _lock:
        if _engine is not None and _pid == os.getpid():
            _engine.dispose()
        _settings = _engine = _maker = _pid = _device = None
