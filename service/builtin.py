"""Built-in real datasets read from files that ship inside an installed package (nothing is downloaded).

``digits``: scikit-learn's 8x8 handwritten digits (1,797 images of 0-9, pixel values 0..16), read straight
from ``sklearn/datasets/data/digits.csv.gz`` without importing scikit-learn. Stored as (N, 64) float64
(divided by 16 when ``scale``) with the digit labels and ``spec.image_shape = [8, 8]``.
"""

import gzip
import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from db.models import Dataset
from service.auth import Principal
from service.datasets import Created, _insert
from service.errors import FieldError, ServiceUnavailable, ValidationFailed
from service.idempotency import find_replay, request_hash
from service.npy import npy_bytes


class BuiltinUnavailable(ServiceUnavailable):
    code = "builtin_unavailable"


class BuiltinCreate(BaseModel):
    """A built-in real dataset."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"dataset": "digits"}]})

    dataset: Literal["digits"] = Field(default="digits", description="scikit-learn's 8x8 handwritten digits.")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    classes: list[int] | None = Field(default=None, min_length=1, max_length=10,
                                      description="Keep only these digits (default all ten).")
    scale: bool = Field(default=True, description="Divide pixel values (0..16) by 16.")


def digits_file() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise BuiltinUnavailable("the digits dataset ships with scikit-learn, which is not installed in the API "
                                 "environment (pip install scikit-learn)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise BuiltinUnavailable(f"{path} not found in the installed scikit-learn")
    return path


def load_digits(classes: list[int] | None = None, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(digits_file(), "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    X, y = raw[:, :-1], raw[:, -1].astype(np.int64)
    if classes is not None:
        keep = np.isin(y, classes)
        X, y = X[keep], y[keep]
    return (X / 16.0 if scale else X), y


def create_builtin(session: Session, principal: Principal, req: BuiltinCreate, idempotency_key: str | None) -> Created:
    digest = request_hash("datasets.builtin", req.model_dump(mode="json"))
    if (existing := find_replay(session, Dataset, principal.owner, idempotency_key, digest)) is not None:
        return Created(existing, True)
    if req.classes is not None:
        bad = [c for c in req.classes if not 0 <= c <= 9]
        if bad or len(set(req.classes)) != len(req.classes):
            raise ValidationFailed([FieldError("classes", f"{req.classes}: distinct digits 0..9")])
    X, y = load_digits(sorted(req.classes) if req.classes else None, req.scale)
    spec = {"builtin": req.dataset, "image_shape": [8, 8], "classes": sorted(set(y.tolist())), "scale": req.scale,
            "source": "scikit-learn sklearn/datasets/data/digits.csv.gz"}
    row = Dataset(owner=principal.owner, name=req.name or "digits", source="builtin", n_samples=int(X.shape[0]),
                  ambient_dim=int(X.shape[1]), spec=spec, has_ground_truth=False, idempotency_key=idempotency_key,
                  request_hash=digest, data_npy=npy_bytes(X), labels_npy=npy_bytes(y))
    return _insert(session, row, principal.owner, idempotency_key, digest)
