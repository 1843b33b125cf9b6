"""Sample sets: diagnostics and the samples as .npy."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from db.models import SampleSet
from service import deletion, results
from service.blobs import blob_response
from service.deps import CurrentKey, SessionDep, SettingsDep
from service.errors import NotFound
from service.routes import OCTET, problems
from service.schemas import Page, SampleSetRead

router = APIRouter(prefix="/sample-sets", tags=["sample sets"])


@router.get("")
def list_sample_sets(session: SessionDep, principal: CurrentKey, settings: SettingsDep,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50, cursor: str | None = None,
                     model_id: uuid.UUID | None = None) -> Page[SampleSetRead]:
    """List sample sets, newest first (cursor pagination)."""
    rows, nxt = results.list_sample_sets(session, principal, model_id, min(limit, settings.max_page_size), cursor)
    return Page[SampleSetRead](items=[results.sample_set_to_read(r) for r in rows], next_cursor=nxt)


@router.get("/{sample_set_id}", responses=problems(404))
def get_sample_set(sample_set_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> SampleSetRead:
    """Show a sample set and its diagnostics."""
    return results.sample_set_to_read(results.get_sample_set(session, principal, sample_set_id))


@router.get("/{sample_set_id}/samples.npy", response_class=Response, responses=OCTET | problems(404))
def download_samples(sample_set_id: uuid.UUID, request: Request, session: SessionDep,
                     principal: CurrentKey) -> Response:
    """Download the samples (n_samples, n) as .npy."""
    results.get_sample_set(session, principal, sample_set_id)  # 404 unless the caller may see it
    return blob_response(session, request.app.state.sessionmaker, SampleSet.samples_npy,
                         (SampleSet.id == sample_set_id,), NotFound("samples of sample set", sample_set_id),
                         headers={"Content-Disposition": f'attachment; filename="{sample_set_id}-samples.npy"'})


@router.delete("/{sample_set_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=problems(404, 409), description=deletion.CASCADE_DOC)
def delete_sample_set(sample_set_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> Response:
    """Delete a sample set with its sample job and plots."""
    deletion.delete_sample_set(session, principal, sample_set_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
