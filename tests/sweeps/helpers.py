"""Helpers shared by the sweep tests: a sweep job + sweep row, a tiny grid, PNG size."""

import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import sweeps as store
from db.base import utcnow
from db.enums import JobKind, JobStatus
from db.models import Job
from db.session import session_scope

TINY = {"ambient_dim": 8, "n_components": 1, "dims": [2, 3], "samples": [2, 3, 4], "samples_per": "component",
        "noise_std": 0.0, "orthogonal": True, "trials": 3, "methods": ["pca"], "method_options": {},
        "success_threshold": 0.5, "seed": 0}


def add_sweep(maker: sessionmaker[Session], spec: dict[str, Any] | None = None, fits_total: int = 18,
              owner: str = "test") -> tuple[uuid.UUID, uuid.UUID]:
    """A queued sweep job and its sweep row; returns (job_id, sweep_id)."""
    spec = dict(spec or TINY)
    job_id = uuid.uuid4()
    with session_scope(maker) as s:
        s.add(Job(id=job_id, owner=owner, kind=JobKind.sweep, status=JobStatus.queued, queue="gpu",
                  params=spec, queued_at=utcnow()))
        s.flush()
        sweep = store.create_sweep(s, owner=owner, job_id=job_id, spec=spec, fits_total=fits_total)
        sweep_id = sweep.id
    return job_id, sweep_id
