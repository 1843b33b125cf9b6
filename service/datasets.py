"""Dataset use cases: generate a synthetic MoLRG, upload an array, read, list, download."""

import uuid
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Dataset
from molrg.spec import generate_synthetic
from service.auth import Principal
from service.errors import IdempotencyKeyInProgress
from service.idempotency import find_replay, request_hash
from service.npy import npy_bytes, npz_bytes
from service.pagination import paginate
from service.schemas import DatasetCreate, DatasetRead
from service.scoping import API, get_visible, visible
from service.settings import ServiceSettings
from service.upload_arrays import Limits
from service.uploads import file_digest, parse_upload
from service.validation import validate_synthetic


@dataclass(frozen=True)
class Created:
    row: Dataset
    replayed: bool


def to_read(row: Dataset) -> DatasetRead:
    links = {"self": f"{API}/datasets/{row.id}", "data": f"{API}/datasets/{row.id}/data.npy"}
    if row.has_ground_truth:
        links["labels"] = f"{API}/datasets/{row.id}/labels.npy"
        links["bases"] = f"{API}/datasets/{row.id}/bases.npz"
    elif row.source == "builtin":  # real data with class labels (service.builtin)
        links["labels"] = f"{API}/datasets/{row.id}/labels.npy"
    return DatasetRead.model_validate(row).model_copy(update={"links": links})


def _insert(session: Session, row: Dataset, owner: str, key: str | None, digest: str) -> Created:
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent request with the same key got there first.
        session.rollback()
        existing = find_replay(session, Dataset, owner, key, digest)
        if existing is None:
            raise IdempotencyKeyInProgress(f"a request with Idempotency-Key {key!r} is in progress") from None
        return Created(existing, True)
    return Created(row, False)


def create_synthetic(session: Session, principal: Principal, req: DatasetCreate, settings: ServiceSettings,
                     idempotency_key: str | None) -> Created:
    digest = request_hash("datasets.synthetic", req.model_dump(mode="json"))
    if (existing := find_replay(session, Dataset, principal.owner, idempotency_key, digest)) is not None:
        return Created(existing, True)
    spec = req.synthetic
    validate_synthetic(spec, settings)
    # The one MoLRG generator (molrg.spec): the same arrays as molrg.make_molrg and the sweeps. Sync route:
    # it runs in the threadpool, off the event loop, within the synthetic_budget_bytes checked above.
    data = generate_synthetic(spec)
    stored_spec = spec.model_dump(mode="json") | {"weights": data.weights.tolist(), "counts": data.counts,
                                                   "generator": "molrg.spec.generate_synthetic"}
    row = Dataset(
        owner=principal.owner, name=req.name, source="synthetic", n_samples=int(data.X.shape[0]),
        ambient_dim=spec.ambient_dim, spec=stored_spec, has_ground_truth=True,
        idempotency_key=idempotency_key, request_hash=digest,
        data_npy=npy_bytes(data.X), labels_npy=npy_bytes(data.labels), bases_npz=npz_bytes(data.bases),
    )
    return _insert(session, row, principal.owner, idempotency_key, digest)


NAME_MAX = 200  # Dataset.name


def create_upload(session: Session, principal: Principal, file: BinaryIO, size: int, filename: str | None,
                  name: str | None, settings: ServiceSettings, idempotency_key: str | None) -> Created:
    """Parse the spooled upload while reading it (service.uploads) and store its float64 ``.npy`` bytes."""
    digest = file_digest(file, f"datasets.upload:{name}:{filename}".encode() + b"\0bytes\0")  # = request_hash
    if (existing := find_replay(session, Dataset, principal.owner, idempotency_key, digest)) is not None:
        return Created(existing, True)
    limits = Limits(settings.max_rows, settings.max_ambient_dim, settings.max_dataset_values)
    parsed = parse_upload(file, size, filename, limits)
    row = Dataset(
        owner=principal.owner, name=name or (filename or "upload")[:NAME_MAX], source="upload",  # fits String(200)
        n_samples=parsed.shape[0], ambient_dim=parsed.shape[1],
        spec={"format": parsed.format, "filename": filename, "source_dtype": parsed.source_dtype},
        has_ground_truth=False, idempotency_key=idempotency_key, request_hash=digest,
        data_npy=parsed.npy,  # the drivers bind a bytearray as is (SQLite still copies it twice internally)
    )
    return _insert(session, row, principal.owner, idempotency_key, digest)


def get_dataset(session: Session, principal: Principal, dataset_id: uuid.UUID) -> Dataset:
    return get_visible(session, Dataset, dataset_id, principal, "dataset")


def list_datasets(session: Session, principal: Principal, limit: int, cursor: str | None) -> tuple[list[Dataset], str | None]:
    return paginate(session, visible(select(Dataset), Dataset, principal), Dataset, limit, cursor)


ARTIFACTS = {"data.npy": "data_npy", "labels.npy": "labels_npy", "bases.npz": "bases_npz"}
