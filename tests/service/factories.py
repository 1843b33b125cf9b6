"""Helpers to create resources through the API or, for worker-written rows, directly in the database."""

import io
import uuid
from typing import Any

import numpy as np

from db.base import utcnow
from db.enums import JobKind, JobStatus
from db.models import FittedModel, Job, SampleSet
from db.session import session_scope

SYNTH = {"name": "planes", "synthetic": {"ambient_dim": 12, "dims": [2, 3], "n_samples": 20, "seed": 1}}


def make_dataset(api: Any, headers: dict[str, str], **synthetic: Any) -> dict[str, Any]:
    body = {"name": "d", "synthetic": {**SYNTH["synthetic"], **synthetic}}
    r = api.client.post("/api/v1/datasets", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def submit_fit(api: Any, headers: dict[str, str], dataset_id: str, **extra: Any) -> dict[str, Any]:
    body = {"dataset_id": dataset_id, "n_components": 2, "dims": [2, 3], "method": "subspace_clustering", **extra}
    r = api.client.post("/api/v1/fits", json=body, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


def npz(arrays: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{f"U_{k}": a for k, a in enumerate(arrays)})
    return buf.getvalue()


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def insert_model(api: Any, owner: str, dataset_id: str, ambient_dim: int = 12) -> tuple[str, str]:
    """A succeeded fit job with its FittedModel, as a worker would write them; returns (job_id, model_id)."""
    job_id, model_id = uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    bases = [np.linalg.qr(np.random.default_rng(0).standard_normal((ambient_dim, d)))[0] for d in (2, 3)]
    with session_scope(api.maker) as s:
        s.add(Job(id=job_id, owner=owner, kind=JobKind.fit, status=JobStatus.succeeded, queue="gpu",
                  params={"dataset_id": dataset_id}, progress=1.0, attempts=1, started_at=now, finished_at=now,
                  queued_at=now, result={"model_id": str(model_id)}))
        s.flush()
        s.add(FittedModel(id=model_id, owner=owner, job_id=job_id, dataset_id=uuid.UUID(dataset_id),
                          method="subspace_clustering", n_components=2, ambient_dim=ambient_dim, dims=[2, 3],
                          weights=[0.5, 0.5], config={"n_restarts": 1}, seed=0,
                          metrics={"recovery_error": 0.01, "final_loss": 0.1}, bases_npz=npz(bases)))
    return str(job_id), str(model_id)


def insert_sample_set(api: Any, owner: str, model_id: str, n: int = 12) -> str:
    job_id, set_id = uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    with session_scope(api.maker) as s:
        s.add(Job(id=job_id, owner=owner, kind=JobKind.sample, status=JobStatus.succeeded, queue="gpu",
                  params={"model_id": model_id}, progress=1.0, attempts=1, started_at=now, finished_at=now,
                  result={"sample_set_id": str(set_id)}))
        s.flush()
        s.add(SampleSet(id=set_id, owner=owner, job_id=job_id, model_id=uuid.UUID(model_id), n_samples=5,
                        sampler="heun", steps=18, seed=0, diagnostics={"off_subspace_residual": 1e-3},
                        samples_npy=npy(np.ones((5, n)))))
    return str(set_id)
