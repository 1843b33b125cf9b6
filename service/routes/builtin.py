"""Built-in real datasets: ``POST /api/v1/datasets/builtin`` (scikit-learn's 8x8 digits)."""

from fastapi import APIRouter, Response, status

from service import datasets as dataset_cases
from service.builtin import BuiltinCreate, create_builtin
from service.deps import CurrentKey, IdempotencyKey, SessionDep
from service.routes import problems
from service.schemas import DatasetRead
from service.scoping import API

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("/builtin", status_code=status.HTTP_201_CREATED, responses=problems(409, 422, 503))
def create_builtin_dataset(body: BuiltinCreate, session: SessionDep, principal: CurrentKey, response: Response,
                           idempotency_key: IdempotencyKey = None) -> DatasetRead:
    """Create a dataset from a built-in real image set (8x8 digits, with their labels; nothing is downloaded)."""
    created = create_builtin(session, principal, body, idempotency_key)
    response.headers["Location"] = f"{API}/datasets/{created.row.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return dataset_cases.to_read(created.row)
