"""Values at the bounds the API accepts fit the columns on both backends (seeds up to 2^63-1)."""

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.enums import JobKind, JobStatus
from db.models import FittedModel, SampleSet
from db.session import session_scope
from tests.db.dbfixtures import add_dataset, add_job, fit_params

MAX_SEED = 2**63 - 1  # the largest seed service.schemas accepts


def test_model_and_sample_set_seeds_hold_any_accepted_seed(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker)
    fit_job = add_job(maker, JobKind.fit, fit_params(ds, seed=MAX_SEED), status=JobStatus.succeeded)
    sample_job = add_job(maker, JobKind.sample, {"seed": MAX_SEED}, status=JobStatus.succeeded)
    model_id, set_id = uuid.uuid4(), uuid.uuid4()
    with session_scope(maker) as s:
        s.add(FittedModel(id=model_id, owner="test", job_id=fit_job, dataset_id=ds, method="pca", n_components=1,
                          ambient_dim=6, dims=[2], weights=[1.0], config={}, seed=MAX_SEED, metrics={},
                          bases_npz=b"x"))
        s.flush()
        s.add(SampleSet(id=set_id, owner="test", job_id=sample_job, model_id=model_id, n_samples=1,
                        sampler="heun", steps=1, seed=MAX_SEED, diagnostics={}, samples_npy=b"x"))
    with maker() as s:
        assert s.scalar(select(FittedModel.seed).where(FittedModel.id == model_id)) == MAX_SEED
        assert s.scalar(select(SampleSet.seed).where(SampleSet.id == set_id)) == MAX_SEED
