"""``molrg up``'s worker processes: started once, started again whenever one exits while the API runs.

A Celery worker's main process can die (SIGKILL, the OOM killer, an error Celery deems unrecoverable);
its running job is re-queued by the reaper, but without a supervisor ``molrg up`` would go on serving
the API with no worker at all. Restarts back off (1, 2, 4 ... 60 s) while a process keeps dying within a
minute of its start, so a worker that cannot start does not spin.
"""

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
HEALTHY_AFTER_S = 60.0  # a process that ran this long resets its backoff


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
        self._thread = threading.Thread(target=self._watch, name="molrg-worker-supervisor", daemon=True)
        self._thread.start()

    def _start(self, cmd: list[str]) -> "subprocess.Popen[bytes]":
        # Its own session, so stopping it (or a SIGKILL of its group) reaches the pool children and beat.
        return subprocess.Popen(cmd, env=self.env, start_new_session=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.check_s):
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
        """Stop supervising, then warm-shutdown every process (SIGTERM), SIGKILL what is left after ``timeout``."""
        self._stop.set()
        self._thread.join()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
