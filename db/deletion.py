"""Deleting a resource together with everything derived from it.

A job and the resource it produced are one record: a fit job and its model, a sample job and its sample
set, a sweep job and its sweep. Deleting either deletes both, with the job's metrics and plots. Derived
resources go too: a dataset takes the fit jobs run on it (and their models, and everything sampled from
those models); a model takes the sample jobs drawn from it and their sample sets.

``plan_*`` collects the rows; ``blockers`` lists the jobs among them that are still queued, running or
cancelling (and sweeps with a chunk still running), which the caller reports as a conflict; ``execute``
deletes children before parents, so it does not depend on ``ON DELETE CASCADE`` being enforced (SQLite
without ``PRAGMA foreign_keys``) and never trips a foreign key on PostgreSQL.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from db.enums import TERMINAL_STATUSES, JobKind
from db.models import (
    Dataset,
    FittedModel,
    Job,
    MetricPoint,
    Plot,
    SampleSet,
    Sweep,
    SweepChunk,
    SweepFigure,
    SweepHeatmap,
    SweepTrial,
)

RUNNING_CHUNK = "running"  # db.sweeps.ChunkStatus.running (not imported: db.sweeps imports more than needed)


@dataclass
class Plan:
    """Ids of every row a delete removes (the jobs own their metrics and plots)."""

    jobs: set[uuid.UUID] = field(default_factory=set)
    models: set[uuid.UUID] = field(default_factory=set)
    sample_sets: set[uuid.UUID] = field(default_factory=set)
    sweeps: set[uuid.UUID] = field(default_factory=set)
    datasets: set[uuid.UUID] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        return {"jobs": len(self.jobs), "models": len(self.models), "sample_sets": len(self.sample_sets),
                "sweeps": len(self.sweeps), "datasets": len(self.datasets)}


@dataclass(frozen=True)
class Blocker:
    """A job in the plan that is not finished (``chunk`` set: a sweep chunk of that job still runs)."""

    job_id: uuid.UUID
    kind: str
    status: str
    chunk: int | None = None


def _param_is(key: str, values: Iterable[uuid.UUID]) -> ColumnElement[bool]:
    return Job.params[key].as_string().in_([str(v) for v in values])


def _add_models(session: Session, plan: Plan, model_ids: set[uuid.UUID]) -> None:
    """The models, their fit jobs, the sample jobs drawn from them and those jobs' sample sets."""
    if not model_ids:
        return
    plan.models |= model_ids
    plan.jobs |= set(session.scalars(select(FittedModel.job_id).where(FittedModel.id.in_(model_ids))))
    for set_id, job_id in session.execute(select(SampleSet.id, SampleSet.job_id)
                                          .where(SampleSet.model_id.in_(model_ids))):
        plan.sample_sets.add(set_id)
        plan.jobs.add(job_id)
    # Sample jobs that produced nothing (queued, running, failed, cancelled) name the model in params only.
    plan.jobs |= set(session.scalars(select(Job.id).where(Job.kind == JobKind.sample,
                                                          _param_is("model_id", model_ids))))


def _add_jobs(session: Session, plan: Plan, job_ids: set[uuid.UUID]) -> None:
    """The jobs and what they produced (a fit job's model brings that model's samples along)."""
    plan.jobs |= job_ids
    model_ids = set(session.scalars(select(FittedModel.id).where(FittedModel.job_id.in_(job_ids))))
    plan.sample_sets |= set(session.scalars(select(SampleSet.id).where(SampleSet.job_id.in_(job_ids))))
    plan.sweeps |= set(session.scalars(select(Sweep.id).where(Sweep.job_id.in_(job_ids))))
    _add_models(session, plan, model_ids - plan.models)


def plan_dataset(session: Session, dataset_id: uuid.UUID) -> Plan:
    plan = Plan(datasets={dataset_id})
    fit_jobs = set(session.scalars(select(Job.id).where(Job.kind == JobKind.fit, _param_is("dataset_id", [dataset_id]))))
    model_ids = set(session.scalars(select(FittedModel.id).where(FittedModel.dataset_id == dataset_id)))
    _add_jobs(session, plan, fit_jobs)
    _add_models(session, plan, model_ids - plan.models)
    return plan


def plan_model(session: Session, model_id: uuid.UUID) -> Plan:
    plan = Plan()
    _add_models(session, plan, {model_id})
    return plan


def plan_job(session: Session, job_id: uuid.UUID) -> Plan:
    plan = Plan()
    _add_jobs(session, plan, {job_id})
    return plan


def plan_sample_set(session: Session, sample_set_id: uuid.UUID) -> Plan:
    job_id = session.scalar(select(SampleSet.job_id).where(SampleSet.id == sample_set_id))
    plan = Plan(sample_sets={sample_set_id})
    if job_id is not None:
        plan.jobs.add(job_id)
    return plan


def plan_sweep(session: Session, sweep_id: uuid.UUID) -> Plan:
    job_id = session.scalar(select(Sweep.job_id).where(Sweep.id == sweep_id))
    plan = Plan(sweeps={sweep_id})
    if job_id is not None:
        plan.jobs.add(job_id)
    return plan


def blockers(session: Session, plan: Plan) -> list[Blocker]:
    """Unfinished jobs of the plan (oldest first), then sweeps of finished jobs whose chunks still run."""
    if not plan.jobs:
        return []
    out = [Blocker(job_id, str(kind), str(status)) for job_id, kind, status in session.execute(
        select(Job.id, Job.kind, Job.status)
        .where(Job.id.in_(plan.jobs), Job.status.not_in([str(s) for s in TERMINAL_STATUSES]))
        .order_by(Job.created_at, Job.id))]
    if plan.sweeps:
        out += [Blocker(job_id, "sweep", str(status), index) for job_id, status, index in session.execute(
            select(Sweep.job_id, Job.status, SweepChunk.index)
            .join(SweepChunk, SweepChunk.sweep_id == Sweep.id).join(Job, Job.id == Sweep.job_id)
            .where(Sweep.id.in_(plan.sweeps), SweepChunk.status == RUNNING_CHUNK,
                   Job.status.in_([str(s) for s in TERMINAL_STATUSES]))
            .order_by(SweepChunk.index).limit(1))]
    return out


def execute(session: Session, plan: Plan) -> dict[str, int]:
    """Delete the planned rows, children first; returns how many of each kind were planned."""
    jobs, sweeps = list(plan.jobs), list(plan.sweeps)
    if jobs:
        session.execute(delete(MetricPoint).where(MetricPoint.job_id.in_(jobs)))
        session.execute(delete(Plot).where(Plot.job_id.in_(jobs)))
    if sweeps:
        for table in (SweepTrial, SweepChunk, SweepHeatmap, SweepFigure):
            session.execute(delete(table).where(table.sweep_id.in_(sweeps)))
        session.execute(delete(Sweep).where(Sweep.id.in_(sweeps)))
    if plan.sample_sets:
        session.execute(delete(SampleSet).where(SampleSet.id.in_(list(plan.sample_sets))))
    if plan.models:
        session.execute(delete(FittedModel).where(FittedModel.id.in_(list(plan.models))))
    if jobs:
        session.execute(delete(Job).where(Job.id.in_(jobs)))
    if plan.datasets:
        session.execute(delete(Dataset).where(Dataset.id.in_(list(plan.datasets))))
    return plan.counts()
