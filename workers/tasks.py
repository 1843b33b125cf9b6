"""Thin named Celery tasks: they take a job id only and hand it to a pipeline."""

import logging
import uuid

from celery import Task

from db import jobs
from db.enums import JobKind, task_name
from workers import pipelines, resources, sweeps
from workers.celery_app import REAP_TASK, app, app_settings

logger = logging.getLogger(__name__)

RETRY_COUNTDOWN_S = 10
MAX_RETRIES = 5


def _run(task: Task, kind: JobKind, job_id: str) -> str:
    resources.set_settings(app_settings(task.app))
    try:
        jid = uuid.UUID(str(job_id))
    except ValueError:
        logger.error("molrg.%s: ignoring message with invalid job id %r", kind, job_id)
        return "invalid"
    try:
        outcome = pipelines.execute(kind, jid, maker=resources.get_sessionmaker(), settings=resources.get_settings(),
                                    device=resources.get_device, hostname=task.request.hostname)
    except pipelines.TRANSIENT_ERRORS as exc:
        raise task.retry(exc=exc, countdown=RETRY_COUNTDOWN_S, max_retries=MAX_RETRIES) from exc
    return str(outcome)


@app.task(name=task_name(JobKind.fit), bind=True)
def fit(self: Task, job_id: str) -> str:
    """Fit a MoLRG model for one job."""
    return _run(self, JobKind.fit, job_id)


@app.task(name=task_name(JobKind.sample), bind=True)
def sample(self: Task, job_id: str) -> str:
    """Draw samples from a fitted model for one job."""
    return _run(self, JobKind.sample, job_id)


@app.task(name=REAP_TASK, bind=True)
def reap(self: Task) -> dict[str, int]:
    """Re-queue or fail jobs whose worker died; republish queued jobs whose message was lost."""
    resources.set_settings(app_settings(self.app))

    def publish(item: jobs.Republish) -> None:
        self.app.send_task(task_name(item.kind), kwargs={"job_id": str(item.job_id)}, queue=item.queue)

    # Sweep chunks first: it refreshes live sweep jobs so the job reaper judges them by their chunks.
    sweeps.reap_sweeps(resources.get_sessionmaker(), resources.get_settings(), sweeps.publisher(self))
    report = pipelines.run_reap(resources.get_sessionmaker(), resources.get_settings(), publish)
    return {"requeued": len(report.requeued), "failed": len(report.failed), "cancelled": len(report.cancelled),
            "republished": len(report.republished)}
