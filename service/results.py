"""Result reads: fitted models and sample sets (rows written by the workers)."""

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import FittedModel, MetricPoint, SampleSet
from service.auth import Principal
from service.pagination import paginate
from service.schemas import ModelRead, SampleSetRead
from service.scoping import API, get_visible, visible


def metric_names(session: Session, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """The names of the per-step histories each job has (one query for a page of models)."""
    out: dict[uuid.UUID, list[str]] = {}
    if job_ids:
        for job_id, name in session.execute(select(MetricPoint.job_id, MetricPoint.name)
                                            .where(MetricPoint.job_id.in_(list(job_ids))).distinct()
                                            .order_by(MetricPoint.job_id, MetricPoint.name)):
            out.setdefault(job_id, []).append(name)
    return out


def model_to_read(row: FittedModel, metrics: Sequence[str] = ()) -> ModelRead:
    """The model with its links; ``loss`` only when its fit recorded a loss history (``metrics``: the names
    of the fit job's histories, from :func:`metric_names`), e.g. never for PCA or subspace clustering."""
    links = {"self": f"{API}/models/{row.id}", "bases": f"{API}/models/{row.id}/bases.npz",
             "job": f"{API}/jobs/{row.job_id}", "dataset": f"{API}/datasets/{row.dataset_id}",
             "samples": f"{API}/models/{row.id}/samples", "plots": f"{API}/models/{row.id}/plots"}
    links |= {name: f"{API}/jobs/{row.job_id}/metrics?name={name}" for name in metrics if name == "loss"}
    if row.method == "neural":  # networks keep their weights (safetensors)
        links["weights"] = f"{API}/models/{row.id}/weights.safetensors"
    return ModelRead.model_validate(row).model_copy(update={"links": links})


def sample_set_to_read(row: SampleSet) -> SampleSetRead:
    links = {"self": f"{API}/sample-sets/{row.id}", "samples": f"{API}/sample-sets/{row.id}/samples.npy",
             "job": f"{API}/jobs/{row.job_id}", "model": f"{API}/models/{row.model_id}",
             "plots": f"{API}/sample-sets/{row.id}/plots"}
    return SampleSetRead.model_validate(row).model_copy(update={"links": links})


def get_model(session: Session, principal: Principal, model_id: uuid.UUID) -> FittedModel:
    return get_visible(session, FittedModel, model_id, principal, "model")


def list_models(session: Session, principal: Principal, dataset_id: uuid.UUID | None, limit: int,
                cursor: str | None) -> tuple[list[FittedModel], str | None]:
    stmt = visible(select(FittedModel), FittedModel, principal)
    if dataset_id is not None:
        stmt = stmt.where(FittedModel.dataset_id == dataset_id)
    return paginate(session, stmt, FittedModel, limit, cursor)


def get_sample_set(session: Session, principal: Principal, sample_set_id: uuid.UUID) -> SampleSet:
    return get_visible(session, SampleSet, sample_set_id, principal, "sample set")


def list_sample_sets(session: Session, principal: Principal, model_id: uuid.UUID | None, limit: int,
                     cursor: str | None) -> tuple[list[SampleSet], str | None]:
    stmt = visible(select(SampleSet), SampleSet, principal)
    if model_id is not None:
        stmt = stmt.where(SampleSet.model_id == model_id)
    return paginate(session, stmt, SampleSet, limit, cursor)
