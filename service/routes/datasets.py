"""Dataset routes: synthetic generation, upload, listing, download."""

import os
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status

from db.models import Dataset
from service import datasets as use_cases
from service import deletion
from service.blobs import blob_response
from service.deps import CurrentKey, IdempotencyKey, SessionDep, SettingsDep
from service.errors import NotFound, PayloadTooLarge, reject_nul
from service.routes import OCTET, problems
from service.schemas import DatasetCreate, DatasetRead, Page

router = APIRouter(prefix="/datasets", tags=["datasets"])
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (capped by MOLRG_MAX_PAGE_SIZE).")]


def _created(response: Response, created: use_cases.Created) -> DatasetRead:
    response.headers["Location"] = f"/api/v1/datasets/{created.row.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return use_cases.to_read(created.row)


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(409, 413, 422))
def create_dataset(body: DatasetCreate, session: SessionDep, principal: CurrentKey, settings: SettingsDep,
                   response: Response, idempotency_key: IdempotencyKey = None) -> DatasetRead:
    """Generate a synthetic MoLRG dataset (ground-truth bases and labels are stored)."""
    return _created(response, use_cases.create_synthetic(session, principal, body, settings, idempotency_key))


@router.post("/upload", status_code=status.HTTP_201_CREATED, responses=problems(409, 413, 422))
def upload_dataset(
    file: Annotated[UploadFile, File(description="(N, n) array as .npy (no pickles), CSV or JSON rows.")],
    session: SessionDep, principal: CurrentKey, settings: SettingsDep, response: Response,
    name: Annotated[str | None, Form(max_length=200)] = None, idempotency_key: IdempotencyKey = None,
) -> DatasetRead:
    """Upload an (N, n) float array as .npy, CSV or JSON."""
    # The multipart parser spooled the file to disk; it is parsed from there in pieces (service.uploads).
    reject_nul({"name": name, "file.filename": file.filename})
    size = file.file.seek(0, os.SEEK_END)
    if size > settings.max_upload_bytes:
        raise PayloadTooLarge(f"upload exceeds max_upload_bytes={settings.max_upload_bytes}")
    created = use_cases.create_upload(session, principal, file.file, size, file.filename, name, settings,
                                      idempotency_key)
    return _created(response, created)


@router.get("")
def list_datasets(session: SessionDep, principal: CurrentKey, settings: SettingsDep, limit: Limit = 50,
                  cursor: str | None = None) -> Page[DatasetRead]:
    """List datasets, newest first (cursor pagination)."""
    rows, nxt = use_cases.list_datasets(session, principal, min(limit, settings.max_page_size), cursor)
    return Page[DatasetRead](items=[use_cases.to_read(r) for r in rows], next_cursor=nxt)


@router.get("/{dataset_id}", responses=problems(404))
def get_dataset(dataset_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> DatasetRead:
    """Show one dataset."""
    return use_cases.to_read(use_cases.get_dataset(session, principal, dataset_id))


def _download(request: Request, session: SessionDep, principal: CurrentKey, dataset_id: uuid.UUID,
              artifact: str) -> Response:
    use_cases.get_dataset(session, principal, dataset_id)  # 404 unless the caller may see it
    return blob_response(session, request.app.state.sessionmaker, getattr(Dataset, use_cases.ARTIFACTS[artifact]),
                         (Dataset.id == dataset_id,), NotFound(f"{artifact} of dataset", dataset_id),
                         headers={"Content-Disposition": f'attachment; filename="{dataset_id}-{artifact}"'})


@router.get("/{dataset_id}/data.npy", response_class=Response, responses=OCTET | problems(404))
def download_data(dataset_id: uuid.UUID, request: Request, session: SessionDep, principal: CurrentKey) -> Response:
    """Download the (N, n) float64 array as .npy."""
    return _download(request, session, principal, dataset_id, "data.npy")


@router.get("/{dataset_id}/labels.npy", response_class=Response, responses=OCTET | problems(404))
def download_labels(dataset_id: uuid.UUID, request: Request, session: SessionDep, principal: CurrentKey) -> Response:
    """Download the true component labels (N,) int64 of a synthetic dataset."""
    return _download(request, session, principal, dataset_id, "labels.npy")


@router.get("/{dataset_id}/bases.npz", response_class=Response, responses=OCTET | problems(404))
def download_bases(dataset_id: uuid.UUID, request: Request, session: SessionDep, principal: CurrentKey) -> Response:
    """Download the true bases U_0..U_{K-1} of a synthetic dataset as .npz."""
    return _download(request, session, principal, dataset_id, "bases.npz")


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=problems(404, 409), description=deletion.CASCADE_DOC)
def delete_dataset(dataset_id: uuid.UUID, session: SessionDep, principal: CurrentKey) -> Response:
    """Delete a dataset with the fit jobs run on it, their models and everything sampled from them."""
    deletion.delete_dataset(session, principal, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
