"""A background thread per running job: stamps heartbeat_at and progress, and watches for cancellation."""

import logging
import threading
import uuid
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import jobs
from db.session import session_scope

logger = logging.getLogger(__name__)


class Heartbeat:
    """Context manager: writes a heartbeat every ``interval_s`` until exit; sets ``cancel`` on request."""

    def __init__(self, maker: sessionmaker[Session], job_id: uuid.UUID, attempt: int, interval_s: float) -> None:
        self.maker = maker
        self.job_id = job_id
        self.attempt = attempt
        self.interval_s = interval_s
        self.cancel = threading.Event()  # set when cancel_requested is seen
        self.lost = threading.Event()  # set when this attempt no longer owns the job
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._progress: float | None = None
        self._detail: dict[str, Any] | None = None
        self._unwritten = False
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    @property
    def should_stop(self) -> bool:
        """True when the run must stop: cancel requested or ownership lost."""
        return self.cancel.is_set() or self.lost.is_set()

    def report(self, progress: float, detail: dict[str, Any] | None = None) -> None:
        """Record progress in memory; the next beat writes it."""
        with self._lock:
            self._progress, self._detail, self._unwritten = progress, detail, True

    def beat(self) -> None:
        """Write one heartbeat now and update the cancel/lost flags."""
        with self._lock:
            progress, detail, self._unwritten = self._progress, self._detail, False
        with session_scope(self.maker) as session:
            state = jobs.heartbeat(session, self.job_id, self.attempt, progress, detail)
        if not state.owned:
            logger.warning("job %s attempt %d no longer owned by this worker; stopping", self.job_id, self.attempt)
            self.lost.set()
        elif state.cancel_requested and not self.cancel.is_set():
            logger.info("job %s: cancel requested", self.job_id)
            self.cancel.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception:  # a failed beat must not kill the job; the reaper judges staleness
                logger.exception("heartbeat for job %s failed", self.job_id)

    def stop(self) -> None:
        """Stop beating (before the terminal write, so no beat races it); idempotent.

        The last report is written once more if no beat carried it, so a finished job shows its true
        last step (a fit that stopped early at step 825 reads 825/825, not the 650/2000 of the last beat).
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(self.interval_s, 5.0) + 30.0)
        if self._unwritten and not self.lost.is_set():
            try:
                self.beat()
            except Exception:  # the terminal write follows; a failed last beat loses only the detail
                logger.exception("last heartbeat for job %s failed", self.job_id)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
