"""Fit submission: POST /fits -> 202 + Location of the job."""

from fastapi import APIRouter, Response, status

from service import jobs as use_cases
from service.deps import CurrentKey, IdempotencyKey, QueueDep, SessionDep, SettingsDep
from service.routes import problems
from service.schemas import FitCreate, JobRead

router = APIRouter(tags=["fits"])


def accepted(response: Response, submitted: use_cases.Submitted) -> JobRead:
    response.headers["Location"] = f"/api/v1/jobs/{submitted.job.id}"
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return use_cases.to_read(submitted.job)


@router.post("/fits", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 409, 413, 422))
def create_fit(body: FitCreate, session: SessionDep, queue: QueueDep, principal: CurrentKey, settings: SettingsDep,
               response: Response, idempotency_key: IdempotencyKey = None) -> JobRead:
    """Submit a fit job; poll the job at Location."""
    return accepted(response, use_cases.submit_fit(session, queue, principal, body, settings, idempotency_key))
