"""Enumerations shared by the API and the workers: the cross-process contract."""

from enum import StrEnum


class JobKind(StrEnum):
    """What a job does; the value is the suffix of its Celery task name (``molrg.<kind>``)."""

    fit = "fit"
    sample = "sample"
    sweep = "sweep"


class Queue(StrEnum):
    """Celery queues: ``gpu`` takes every job and sweep chunk (CUDA when the worker has it), ``cpu`` bookkeeping."""

    gpu = "gpu"
    cpu = "cpu"


class JobStatus(StrEnum):
    """Job lifecycle: queued -> running -> succeeded | failed | cancelled (cancelling in between)."""

    queued = "queued"
    running = "running"
    cancelling = "cancelling"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


def task_name(kind: JobKind | str) -> str:
    """The Celery task name a job of this kind is delivered to."""
    return f"molrg.{JobKind(kind).value}"
