"""``molrg up``'s worker processes: started once, started again whenever one exits while the API runs.

A Celery worker's main process can die (SIGKILL, the OOM killer, an error Celery deems unrecoverable);
its running job is re-queued by the reaper, but without a supervisor ``molrg up`` would go on serving
the API with no worker at all. Restarts back off (1, 2, 4 ... 60 s) while a process keeps dying within a
minute of its start, so a worker that cannot start does not spin.

The processes die with ``molrg up``, however it dies (SIGKILL included): each is started through a tiny
exec wrapper that asks Linux for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and then
execs the command; Celery's prefork pool children set the same signal on their worker, so nothing of the
stack outlives it. :func:`hold_data_dir` keeps a second ``molrg up`` off a data dir already being served.
"""

import errno
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
HEALTHY_AFTER_S = 60.0  # a process that ran this long resets its backoff


# argv: parent pid, command...  The signal is kept across execve (cleared only for set-uid programs); a parent
# that died before prctl ran is caught by comparing getppid with the pid it was started by.
_EXEC_WITH_PDEATHSIG = (
    "import ctypes, os, signal, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) != 0:\n"
    "    raise OSError(ctypes.get_errno(), 'prctl(PR_SET_PDEATHSIG) failed')\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(70)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` run so that it gets SIGKILL when this process (the thread that starts it) dies; Linux only."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-c", _EXEC_WITH_PDEATHSIG, str(os.getpid()), *cmd]


PR_SET_PDEATHSIG = 1


def set_parent_death_signal(expected_parent: int | None = None) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (e.g. an API worker of ``molrg up
    --api-workers N``, spawned by uvicorn); exits at once when the parent is already gone. No-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(70)


class DataDirInUse(Exception):
    """Another live process holds the data dir's lock."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is locked by process {pid or '(unknown pid)'}")
        self.path = path
        self.pid = pid


LOCK_NAME = "molrg-up.lock"


def hold_data_dir(data_dir: Path) -> IO[str]:
    """An exclusive ``flock`` on ``data_dir/molrg-up.lock`` holding this process's pid, for as long as the
    returned file stays open (the kernel drops it when the process dies, however it dies).

    Raises :class:`DataDirInUse` with the holder's pid when another process holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fh = open(path, "a+")  # noqa: SIM115  (kept open: the lock lives as long as the file)
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            fh.close()
            raise
        fh.seek(0)
        pid = fh.read().strip()
        fh.close()
        raise DataDirInUse(path, pid) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    os.set_inheritable(fh.fileno(), False)  # children must not keep the lock alive
    return fh


class WorkerSupervisor:
    """Runs one process per command and restarts any that exits until :meth:`stop`."""

    def __init__(self, commands: Sequence[list[str]], env: dict[str, str], check_s: float = 1.0) -> None:
        self.commands = [list(c) for c in commands]
        self.env = env
        self.check_s = check_s
        self.procs = [self._start(c) for c in self.commands]
        self.started = [time.monotonic()] * len(self.procs)
        self.failures = [0] * len(self.procs)
        self.restarts = 0
        self._next_start = [0.0] * len(self.procs)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held while the watcher checks and restarts
        self._thread = threading.Thread(target=self._watch, name="molrg-worker-supervisor", daemon=True)
        self._thread.start()

    def _start(self, cmd: list[str]) -> "subprocess.Popen[bytes]":
        # Its own session, so stopping it (or a SIGKILL of its group) reaches the pool children; the parent-death
        # signal ends it when this process dies without stopping it.
        return subprocess.Popen(die_with_parent(cmd), env=self.env, start_new_session=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.check_s):
            with self._lock:
                if not self._stop.is_set():
                    self._check()

    def _check(self) -> None:
        now = time.monotonic()
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                continue
            if not self._next_start[i]:  # just noticed: decide when to start it again
                lived = now - self.started[i]
                self.failures[i] = 0 if lived >= HEALTHY_AFTER_S else self.failures[i] + 1
                delay = min(MAX_BACKOFF_S, 2.0 ** self.failures[i]) if self.failures[i] else 0.0
                self._next_start[i] = now + delay
                log.warning("worker %d (pid %d) exited with %s after %.0f s; starting it again in %.0f s",
                            i, proc.pid, proc.returncode, lived, delay)
            if now >= self._next_start[i] and not self._stop.is_set():
                self.procs[i] = self._start(self.commands[i])
                self.started[i], self._next_start[i] = time.monotonic(), 0.0
                self.restarts += 1

    def stop(self, timeout: float = 30.0) -> None:
        """Stop supervising, then warm-shutdown every process (SIGTERM), SIGKILL what is left after ``timeout``.

        The watcher thread ends only after its processes did: a process it restarted gets its parent-death
        signal when that thread exits.
        """
        self._stop.set()
        with self._lock:  # no restart in flight from here on
            pass
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._thread.join()
