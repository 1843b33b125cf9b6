"""JobQueue: buffers task sends and publishes them only after the request's commit."""

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from db.enums import JobKind, task_name

log = logging.getLogger(__name__)


class TaskSender(Protocol):
    """What JobQueue needs from a Celery app (``celery.Celery.send_task``)."""

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any: ...


@dataclass(frozen=True)
class PendingTask:
    name: str
    job_id: str
    queue: str


class JobQueue:
    """Per-request buffer; ``flush`` after commit, ``clear`` on rollback (never both)."""

    def __init__(self, sender: TaskSender | None) -> None:
        self._sender = sender
        self.pending: list[PendingTask] = []

    def enqueue(self, kind: JobKind | str, job_id: object, queue: str) -> None:
        self.pending.append(PendingTask(task_name(kind), str(job_id), queue))

    def clear(self) -> None:
        self.pending.clear()

    def flush(self) -> None:
        """Publish everything buffered. A failed publish is logged, not raised: the job row is
        committed as ``queued`` and the reaper re-publishes queued jobs whose message was lost."""
        pending, self.pending = self.pending, []
        for task in pending:
            try:
                self.send(task)
            except Exception:
                log.warning("publishing %s for job %s failed; the reaper will re-publish it",
                            task.name, task.job_id, exc_info=True)

    def send(self, task: PendingTask) -> None:
        if self._sender is None:
            raise RuntimeError("no broker client configured")
        self._sender.send_task(task.name, kwargs={"job_id": task.job_id}, queue=task.queue)
