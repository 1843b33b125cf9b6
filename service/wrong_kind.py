"""What an id of the wrong kind is: "<id> is a fit job; its model is <model id>".

Looked up only when a lookup missed (the 404 path), in the other tables of the caller's owner, one
primary-key read each; an id of someone else's resource stays unknown (no existence leak).
"""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.enums import TERMINAL_STATUSES
from db.models import Dataset, FittedModel, Job, SampleSet, Sweep
from service.auth import Principal

KINDS: tuple[tuple[type[Any], str], ...] = (
    (Job, "job"), (FittedModel, "model"), (Dataset, "dataset"), (SampleSet, "sample set"), (Sweep, "sweep"))


def _related(row: Any) -> dict[str, str]:
    """The ids a user may have meant, keyed by the kind they are (``model``, ``dataset``, ...)."""
    if isinstance(row, Job):
        result, params = row.result or {}, row.params or {}
        out = {"model": result.get("model_id") or (params.get("model_id") if row.kind == "sample" else None),
               "sample set": result.get("sample_set_id"), "dataset": params.get("dataset_id"),
               "sweep": params.get("sweep_id")}
        return {k: str(v) for k, v in out.items() if v}
    if isinstance(row, FittedModel):
        return {"job": str(row.job_id), "dataset": str(row.dataset_id)}
    if isinstance(row, SampleSet):
        return {"job": str(row.job_id), "model": str(row.model_id)}
    if isinstance(row, Sweep):
        return {"job": str(row.job_id)}
    return {}


def describe(session: Session, principal: Principal, ident: uuid.UUID, wanted: type[Any]) -> str | None:
    """``"<id> is a <kind>; its <wanted> is <id>"`` when ``ident`` names another kind of resource, else None."""
    wanted_label = next((label for entity, label in KINDS if entity is wanted), None)
    for entity, label in KINDS:
        if entity is wanted:
            continue
        stmt = select(entity).where(entity.id == ident)
        if not principal.is_admin:
            stmt = stmt.where(entity.owner == principal.owner)
        row = session.scalar(stmt)
        if row is None:
            continue
        what = f"{row.kind} job ({row.status})" if isinstance(row, Job) else label
        related = _related(row)
        if wanted_label in related:
            return f"{ident} is a {what}; its {wanted_label} is {related[wanted_label]}"
        if isinstance(row, Job) and wanted_label == "model" and row.kind == "fit":
            return f"{ident} is a {what}; it has no model" + ("" if row.status in TERMINAL_STATUSES else " yet")
        if related:
            return f"{ident} is a {what} (" + ", ".join(f"{k} {v}" for k, v in related.items()) + ")"
        return f"{ident} is a {what}"
    return None
