"""Sample-complexity sweeps: submit, progress and results (JSON, CSV, heatmap PNG)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from service import deletion
from service import jobs as job_cases
from service import sweeps as use_cases
from service.deps import CurrentKey, IdempotencyKey, QueueDep, SessionDep, SettingsDep
from service.routes import Responses, problems
from service.schemas import JobRead, Page
from service.sweep_schemas import SweepCreate, SweepJobRead, SweepRead, SweepSummary

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

CSV: Responses = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV with a header row"}}
PNG: Responses = {200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
             "description": "PNG; X-Image-Width/X-Image-Height give its size"}}


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=problems(409, 413, 422))
def create_sweep(body: SweepCreate, session: SessionDep, queue: QueueDep, principal: CurrentKey,
                 settings: SettingsDep, response: Response, idempotency_key: IdempotencyKey = None) -> SweepJobRead:
    """Submit a sweep; poll the job at Location, read results at links.sweep."""
    job = use_cases.submit_sweep(session, queue, principal, body, settings, idempotency_key)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    job.links["sweep"] = f"/api/v1/sweeps/{job.sweep_id}"
    return job


@router.get("")
def list_sweeps(session: SessionDep, principal: CurrentKey, settings: SettingsDep,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50, cursor: str | None = None) -> Page[SweepSummary]:
    """List sweeps, newest first (cursor pagination)."""
    rows, nxt = use_cases.list_sweeps(session, principal, min(limit, settings.max_page_size), cursor)
    return Page[SweepSummary](items=[use_cases.to_summary(session, r) for r in rows], next_cursor=nxt)


@router.get("/{sweep_id}", responses=problems(404))
def get_sweep(sweep_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> SweepRead:
    """Spec, status, progress, per-cell success and errors, transitions N*(d) and the lines N* ~ d."""
    return use_cases.to_read(session, use_cases.get_sweep(session, principal, sweep_id))


@router.post("/{sweep_id}/cancel", responses=problems(404, 409))
def cancel_sweep(sweep_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> JobRead:
    """Cancel the sweep's job: chunks not started are dropped, running ones stop at their next step."""
    sweep = use_cases.get_sweep(session, principal, sweep_id)
    return job_cases.to_read(job_cases.cancel_job(session, principal, sweep.job_id))


@router.get("/{sweep_id}/trials.csv", response_class=Response, responses=CSV | problems(404))
def trials_csv(sweep_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> Response:
    """One row per trial: method, n_components, ambient_dim, d, samples, trial, seed, error, success, fit time."""
    return Response(use_cases.trials_csv(session, principal, sweep_id), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="sweep-{sweep_id}-trials.csv"'})


@router.get("/{sweep_id}/cells.csv", response_class=Response, responses=CSV | problems(404))
def cells_csv(sweep_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> Response:
    """One row per (method, cell): trials, successes, success_rate, error_median, error_p90."""
    return Response(use_cases.cells_csv(session, principal, sweep_id), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="sweep-{sweep_id}-cells.csv"'})


@router.get("/{sweep_id}/heatmap.png", response_class=Response, responses=PNG | problems(404, 409, 422))
def heatmap_png(sweep_id: uuid.UUID, session: SessionDep, principal: CurrentKey, method: str | None = None,
                n_components: Annotated[int | None, Query(ge=1)] = None,
                ambient_dim: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """Success rate (generalisation score for neural, empirical, exact) over d (rows) and N (columns) with the
    line N = d; rendered when the sweep ends."""
    png, width, height = use_cases.heatmap(session, principal, sweep_id, method, n_components, ambient_dim)
    return Response(png, media_type="image/png",
                    headers={"X-Image-Width": str(width), "X-Image-Height": str(height)})


@router.get("/{sweep_id}/curves.png", response_class=Response, responses=PNG | problems(404, 409, 422))
def curves_png(sweep_id: uuid.UUID, session: SessionDep, principal: CurrentKey,
               n_components: Annotated[int | None, Query(ge=1)] = None,
               ambient_dim: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """Generalisation score and memorised fraction against N_k / d, one curve per d, with the empirical and
    exact references and the low-rank threshold N_k = d; for sweeps with neural, empirical or exact."""
    png, width, height = use_cases.figure(session, principal, sweep_id, "curves", n_components, ambient_dim)
    return Response(png, media_type="image/png",
                    headers={"X-Image-Width": str(width), "X-Image-Height": str(height)})


@router.delete("/{sweep_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=problems(404, 409), description=deletion.CASCADE_DOC)
def delete_sweep(sweep_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> Response:
    """Delete a sweep with its job, chunks, trials and heatmaps."""
    deletion.delete_sweep(session, principal, sweep_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
