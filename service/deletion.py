"""Delete use cases: owner-scoped lookup, a 409 naming the unfinished job, then the cascade of db.deletion.

What goes with what (also in the route docs and README): a job and the resource it produced are one
record (fit job + model, sample job + sample set, sweep job + sweep); a dataset takes its fit jobs and
models and everything sampled from them; a model takes its sample jobs and sample sets. Metrics, plots,
trials, chunks and heatmaps go with their job or sweep. Nothing is deleted while a job among them is
queued, running or cancelling: the caller cancels it first.
"""

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from db import deletion
from db.models import Dataset, FittedModel, Job, SampleSet, Sweep
from service.auth import Principal
from service.errors import InvalidJobState
from service.scoping import API, get_visible

CASCADE_DOC = (
    "A job and the resource it produced are one record: deleting a fit job deletes its model (and the "
    "reverse), a sample job its sample set, a sweep job its sweep. Deleting a dataset also deletes the fit "
    "jobs run on it, their models and everything sampled from them; deleting a model deletes the sample "
    "jobs drawn from it and their sample sets. Metrics, plots, trials and heatmaps go with them. "
    "409 `resource_in_use` names the job that is still queued, running or cancelling: cancel it "
    "(`POST /api/v1/jobs/{id}/cancel`) and delete again once it has stopped. 404 for an id that does not "
    "exist, belongs to someone else, or was already deleted."
)


class ResourceInUse(InvalidJobState):
    """409: the delete would remove a job that has not finished."""

    code = "resource_in_use"


def _conflict(what: str, ident: uuid.UUID, own_job: uuid.UUID | None, blocker: deletion.Blocker) -> ResourceInUse:
    if blocker.chunk is not None:
        return ResourceInUse(
            f"{what} {ident} cannot be deleted yet: chunk {blocker.chunk} of its sweep job {blocker.job_id} "
            f"is still running (the job is {blocker.status}); delete again once the chunk has stopped")
    if blocker.job_id in (ident, own_job):
        subject = f"{what} {ident} cannot be deleted: " + (
            f"it is {blocker.status}" if blocker.job_id == ident else f"its {blocker.kind} job {blocker.job_id} "
                                                                     f"is {blocker.status}")
    else:
        subject = (f"{what} {ident} cannot be deleted: it is used by {blocker.kind} job {blocker.job_id}, "
                   f"which is {blocker.status}")
    if blocker.status == "cancelling":
        return ResourceInUse(f"{subject}; it is stopping, delete again once it has stopped")
    return ResourceInUse(f"{subject}; cancel it first (POST {API}/jobs/{blocker.job_id}/cancel) and delete "
                         f"again once it has stopped")


def _delete(session: Session, what: str, ident: uuid.UUID, own_job: uuid.UUID | None,
            plan_of: Callable[[Session, uuid.UUID], deletion.Plan]) -> dict[str, int]:
    plan = plan_of(session, ident)
    found = deletion.blockers(session, plan)
    if found:
        raise _conflict(what, ident, own_job, found[0])
    return deletion.execute(session, plan)


def delete_dataset(session: Session, principal: Principal, dataset_id: uuid.UUID) -> dict[str, int]:
    row: Any = get_visible(session, Dataset, dataset_id, principal, "dataset")
    return _delete(session, "dataset", row.id, None, deletion.plan_dataset)


def delete_model(session: Session, principal: Principal, model_id: uuid.UUID) -> dict[str, int]:
    row: Any = get_visible(session, FittedModel, model_id, principal, "model")
    return _delete(session, "model", row.id, row.job_id, deletion.plan_model)


def delete_sample_set(session: Session, principal: Principal, sample_set_id: uuid.UUID) -> dict[str, int]:
    row: Any = get_visible(session, SampleSet, sample_set_id, principal, "sample set")
    return _delete(session, "sample set", row.id, row.job_id, deletion.plan_sample_set)


def delete_job(session: Session, principal: Principal, job_id: uuid.UUID) -> dict[str, int]:
    row: Any = get_visible(session, Job, job_id, principal, "job")
    return _delete(session, "job", row.id, None, deletion.plan_job)


def delete_sweep(session: Session, principal: Principal, sweep_id: uuid.UUID) -> dict[str, int]:
    row: Any = get_visible(session, Sweep, sweep_id, principal, "sweep")
    return _delete(session, "sweep", row.id, row.job_id, deletion.plan_sweep)
