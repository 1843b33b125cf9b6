"""Fitted models: read, list, download bases and weights, submit sampling."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from db.models import FittedModel
from service import deletion, results
from service import jobs as job_cases
from service.blobs import blob_response
from service.deps import CurrentKey, IdempotencyKey, QueueDep, SessionDep, SettingsDep
from service.errors import NotFound
from service.routes import OCTET, problems
from service.routes.fits import accepted
from service.schemas import JobRead, ModelRead, Page, SampleCreate

router = APIRouter(prefix="/models", tags=["models"])


@router.get("")
def list_models(session: SessionDep, principal: CurrentKey, settings: SettingsDep,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50, cursor: str | None = None,
                dataset_id: uuid.UUID | None = None) -> Page[ModelRead]:
    """List fitted models, newest first (cursor pagination)."""
    rows, nxt = results.list_models(session, principal, dataset_id, min(limit, settings.max_page_size), cursor)
    names = results.metric_names(session, [r.job_id for r in rows])
    return Page[ModelRead](items=[results.model_to_read(r, names.get(r.job_id, ())) for r in rows], next_cursor=nxt)


@router.get("/{model_id}", responses=problems(404))
def get_model(model_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> ModelRead:
    """Show a fitted model: dims, weights, method, config and metrics; links.loss when the fit has a loss history."""
    row = results.get_model(session, principal, model_id)
    return results.model_to_read(row, results.metric_names(session, [row.job_id]).get(row.job_id, ()))


@router.get("/{model_id}/bases.npz", response_class=Response, responses=OCTET | problems(404))
def download_bases(model_id: uuid.UUID, request: Request, session: SessionDep, principal: CurrentKey) -> Response:
    """Download the fitted bases U_0..U_{K-1} as .npz."""
    results.get_model(session, principal, model_id)  # 404 unless the caller may see it
    return blob_response(session, request.app.state.sessionmaker, FittedModel.bases_npz,
                         (FittedModel.id == model_id,), NotFound("bases of model", model_id),
                         headers={"Content-Disposition": f'attachment; filename="{model_id}-bases.npz"'})


@router.get("/{model_id}/weights.safetensors", response_class=Response, responses=OCTET | problems(404))
def download_weights(model_id: uuid.UUID, request: Request, session: SessionDep, principal: CurrentKey) -> Response:
    """Download a neural model's weights as safetensors (config JSON in the file's metadata); 404 for models
    without weights (low-rank and empirical ones)."""
    results.get_model(session, principal, model_id)  # 404 unless the caller may see it
    return blob_response(session, request.app.state.sessionmaker, FittedModel.weights_safetensors,
                         (FittedModel.id == model_id,), NotFound("weights of model", model_id),
                         headers={"Content-Disposition": f'attachment; filename="{model_id}.safetensors"'})


@router.post("/{model_id}/samples", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 409, 422))
def create_samples(model_id: uuid.UUID, body: SampleCreate, session: SessionDep, queue: QueueDep,
                   principal: CurrentKey, settings: SettingsDep, response: Response,
                   idempotency_key: IdempotencyKey = None) -> JobRead:
    """Submit a sampling job from a fitted model; poll the job at Location."""
    submitted = job_cases.submit_sample(session, queue, principal, model_id, body, settings, idempotency_key)
    return accepted(response, submitted)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=problems(404, 409), description=deletion.CASCADE_DOC)
def delete_model(model_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> Response:
    """Delete a fitted model with its fit job, loss history, plots, and the sample jobs and sample sets drawn from it."""
    deletion.delete_model(session, principal, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
