"""Figures of fitted models and sample sets (PNG rendered by the worker when the job finished).

Models: ``loss`` (training loss), ``projection`` (training data and samples on the fitted bases),
``jacobian`` (denoiser Jacobian rank ratio vs noise level). Sample sets of square images: ``grid``
(samples beside their nearest training images, memorisation ratio) and ``editing`` (editing strip).
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Plot
from service import results
from service.blobs import blob_response
from service.deps import CurrentKey, SessionDep
from service.errors import NotFound
from service.routes import Responses, problems

router = APIRouter(tags=["plots"])
API = "/api/v1"
PNG: Responses = {200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
             "description": "PNG; X-Image-Width/X-Image-Height give its size"}}
Kind = Annotated[str, Path(pattern=r"^[a-z_]{1,40}$", description="Figure kind, e.g. loss, projection, jacobian.")]


class PlotRead(BaseModel):
    kind: str
    title: str
    width: int
    height: int
    url: str


def _list(session: Session, job_id: uuid.UUID, base: str) -> list[PlotRead]:
    rows = session.execute(select(Plot.kind, Plot.title, Plot.width, Plot.height)
                           .where(Plot.job_id == job_id).order_by(Plot.kind)).all()
    return [PlotRead(kind=k, title=t, width=w, height=h, url=f"{base}/plots/{k}.png") for k, t, w, h in rows]


def _png(request: Request, session: Session, job_id: uuid.UUID, kind: str, owner_label: str) -> Response:
    where = (Plot.job_id == job_id, Plot.kind == kind)
    size = session.execute(select(Plot.width, Plot.height).where(*where)).one_or_none()
    missing = NotFound("plot", f"{kind!r} of {owner_label}")
    if size is None:
        raise missing
    return blob_response(session, request.app.state.sessionmaker, Plot.png, where, missing, "image/png",
                         {"X-Image-Width": str(size.width), "X-Image-Height": str(size.height)})


@router.get("/models/{model_id}/plots", responses=problems(404))
def list_model_plots(model_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> list[PlotRead]:
    """The figures of a fitted model (loss, projection, jacobian) with their size and URL."""
    model = results.get_model(session, principal, model_id)
    return _list(session, model.job_id, f"{API}/models/{model_id}")


@router.get("/models/{model_id}/plots/{kind}.png", response_class=Response, responses=PNG | problems(404))
def model_plot(model_id: uuid.UUID, kind: Kind, request: Request, session: SessionDep,
               principal: CurrentKey) -> Response:
    """One figure of a fitted model as PNG."""
    model = results.get_model(session, principal, model_id)
    return _png(request, session, model.job_id, kind, f"model {model_id}")


@router.get("/sample-sets/{sample_set_id}/plots", responses=problems(404))
def list_sample_set_plots(sample_set_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> list[PlotRead]:
    """The figures of a sample set (grid, editing: for square images) with their size and URL."""
    row = results.get_sample_set(session, principal, sample_set_id)
    return _list(session, row.job_id, f"{API}/sample-sets/{sample_set_id}")


@router.get("/sample-sets/{sample_set_id}/plots/{kind}.png", response_class=Response,
            responses=PNG | problems(404))
def sample_set_plot(sample_set_id: uuid.UUID, kind: Kind, request: Request, session: SessionDep,
                    principal: CurrentKey) -> Response:
    """One figure of a sample set as PNG."""
    row = results.get_sample_set(session, principal, sample_set_id)
    return _png(request, session, row.job_id, kind, f"sample set {sample_set_id}")
