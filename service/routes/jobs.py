"""Jobs: status, listing, cancellation, per-step metric histories."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from db.enums import JobKind, JobStatus
from service import deletion
from service import jobs as use_cases
from service.deps import CurrentKey, SessionDep, SettingsDep
from service.routes import problems
from service.schemas import JobRead, MetricHistory, Page

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("")
def list_jobs(session: SessionDep, principal: CurrentKey, settings: SettingsDep, kind: JobKind | None = None,
              status: JobStatus | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              cursor: str | None = None) -> Page[JobRead]:
    """List jobs, newest first, filtered by kind and status (cursor pagination)."""
    rows, nxt = use_cases.list_jobs(session, principal, kind, status, min(limit, settings.max_page_size), cursor)
    return Page[JobRead](items=[use_cases.to_read(j) for j in rows], next_cursor=nxt)


@router.get("/{job_id}", responses=problems(404))
def get_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> JobRead:
    """Show a job: status, progress, timings, attempts, error and result ids."""
    return use_cases.to_read(use_cases.get_job(session, principal, job_id))


@router.post("/{job_id}/cancel", responses=problems(404, 409))
def cancel_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> JobRead:
    """Cancel a job: queued -> cancelled now; running -> cancelling (stops between steps)."""
    return use_cases.to_read(use_cases.cancel_job(session, principal, job_id))


@router.get("/{job_id}/metrics", responses=problems(404))
def job_metrics(job_id: uuid.UUID, session: SessionDep, principal: CurrentKey,
                name: Annotated[str, Query(min_length=1, max_length=100)] = "loss",
                max_points: Annotated[int, Query(ge=2, le=100_000)] = 200) -> MetricHistory:
    """A per-step metric history, downsampled evenly to at most max_points (first and last kept)."""
    return use_cases.job_metrics(session, principal, job_id, name, max_points)


@router.delete("/{job_id}", status_code=204, response_class=Response,
               responses=problems(404, 409), description=deletion.CASCADE_DOC)
def delete_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> Response:
    """Delete a finished job with what it produced (model, sample set or sweep), its metrics and plots."""
    deletion.delete_job(session, principal, job_id)
    return Response(status_code=204)
