"""A fit or sample whose numbers stop being finite fails with a reason a user can act on, the same way on
SQLite and PostgreSQL, and no user-facing error carries SQL, parameters or a stack trace."""

import json
import re
import uuid

import numpy as np
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.enums import JobKind, JobStatus
from db.models import Dataset, FittedModel, MetricPoint
from db.session import session_scope
from tests.db.dbfixtures import add_job, fit_params, get_job
from tests.workers.test_pipelines import run
from workers import codec, finite, pipelines
from workers.pipelines import Outcome


def _dataset(maker: sessionmaker[Session], scale: float, n: int = 24, ambient: int = 6) -> uuid.UUID:
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((ambient, 2)))[0]
    X = (rng.standard_normal((n, 2)) @ U.T) * scale
    assert np.isfinite(X).all()
    ds_id = uuid.uuid4()
    with session_scope(maker) as s:
        s.add(Dataset(id=ds_id, owner="test", name="huge", source="upload", n_samples=n, ambient_dim=ambient,
                      spec={}, has_ground_truth=False, data_npy=codec.array_to_npy(X, np.float64)))
    return ds_id


def _assert_user_facing(error: str | None) -> str:
    assert error is not None
    for leak in ("SELECT", "INSERT", "UPDATE ", "[SQL", "[parameters", "Traceback", 'File "', "sqlalche.me"):
        assert leak not in error, error
    return error


def test_fit_with_overflowing_data_fails_with_an_actionable_reason(maker: sessionmaker[Session]) -> None:
    ds = _dataset(maker, 1e300)
    job_id = add_job(maker, JobKind.fit, fit_params(ds, "diffusion", [2], {"steps": 12, "callback_every": 1}))
    assert run(maker, JobKind.fit, job_id) == Outcome.failed
    job = get_job(maker, job_id)
    error = _assert_user_facing(job.error)
    assert job.status == JobStatus.failed and error.startswith("NonFiniteResult: "), error
    assert "max |x| = 1.64e+300" in error and "overflows float64" in error and "rescale" in error, error
    _assert_nothing_stored(maker, job_id)


def test_pca_of_huge_data_is_fine_and_stores_no_nan(maker: sessionmaker[Session]) -> None:
    # PCA's bases do not overflow (an SVD of the data itself): the fit succeeds; any metric that overflowed
    # is stored as null (JSON has no NaN), the same on both backends
    ds = _dataset(maker, 1e300)
    job_id = add_job(maker, JobKind.fit, fit_params(ds, "pca", [2]))
    assert run(maker, JobKind.fit, job_id) == Outcome.succeeded, get_job(maker, job_id).error
    with maker() as s:
        model = s.scalars(select(FittedModel).where(FittedModel.job_id == job_id)).one()
        assert all(np.isfinite(U).all() for U in codec.npz_to_bases(model.bases_npz))
        assert all(np.isfinite(model.weights))
        json.dumps(model.metrics, allow_nan=False)


def test_fit_whose_loss_becomes_nan_names_the_step(maker: sessionmaker[Session],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A loss that turns NaN mid-training (SQLite used to fail at the INSERT with the SQL in job.error,
    # PostgreSQL to succeed with nulls): the real fit runs, then its history gets a NaN at step 12.
    import molrg

    real_fit = molrg.MoLRGDiffusion.fit

    def fit_then_nan(self: molrg.MoLRGDiffusion, *args: object, **kwargs: object) -> object:
        out = real_fit(self, *args, **kwargs)
        self.loss_history_ = [*self.loss_history_[:12], float("nan"), *self.loss_history_[13:]]
        return out

    monkeypatch.setattr(molrg.MoLRGDiffusion, "fit", fit_then_nan)
    ds = _dataset(maker, 1.0)
    job_id = add_job(maker, JobKind.fit, fit_params(ds, "diffusion", [2], {"steps": 20}))
    assert run(maker, JobKind.fit, job_id) == Outcome.failed
    error = _assert_user_facing(get_job(maker, job_id).error)
    assert re.search(r"the loss became NaN at step 12; lower the learning rate", error), error
    _assert_nothing_stored(maker, job_id)


def test_check_fit_and_samples_messages() -> None:
    X = np.full((10, 4), 3e100)
    with pytest.raises(finite.NonFiniteResult, match=r"loss became \+inf at step 2; the data's scale "
                                                     r"\(max \|x\| = 3e\+100\) overflows float64"):
        finite.check_fit([1.0, 2.0, float("inf")], [np.eye(4)], [1.0], X)
    with pytest.raises(finite.NonFiniteResult, match="bases or weights are NaN"):
        finite.check_fit([], [np.full((4, 2), np.nan)], [1.0], np.ones((10, 4)))
    with pytest.raises(finite.NonFiniteResult, match="2 of 8 sampled values are NaN or infinite; use more"):
        finite.check_samples(np.array([1.0, np.nan, 2, 3, np.inf, 5, 6, 7]), np.ones((10, 4)))
    finite.check_fit([1.0, 0.5], [np.eye(4)], [1.0], np.ones((10, 4)))  # finite: no error
    assert finite.data_scale(np.full((24, 6), 1e76)) == "" and finite.data_scale(np.full((24, 6), 1e77))


def _assert_nothing_stored(maker: sessionmaker[Session], job_id: uuid.UUID) -> None:
    with maker() as s:
        assert s.scalar(select(func.count()).select_from(FittedModel).where(FittedModel.job_id == job_id)) == 0
        assert s.scalar(select(func.count()).select_from(MetricPoint).where(MetricPoint.job_id == job_id)) == 0


def test_database_errors_reach_the_job_without_sql(maker: sessionmaker[Session],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _dataset(maker, 1.0)
    job_id = add_job(maker, JobKind.fit, fit_params(ds, "pca", [2]))

    def refuse(*_a: object, **_k: object) -> None:
        raise sa_exc.IntegrityError("INSERT INTO models (id, seed) VALUES (?, ?)", (1, 2**70),
                                    ValueError("NOT NULL constraint failed: models.seed\nDETAIL: row (1, 2)"))

    monkeypatch.setattr(pipelines, "fit_metrics", refuse)
    assert run(maker, JobKind.fit, job_id) == Outcome.failed
    error = _assert_user_facing(get_job(maker, job_id).error)
    assert "2**70" not in error and str(2**70) not in error and "DETAIL" not in error, error
    assert "NOT NULL constraint failed: models.seed" in error, error


def test_sample_with_non_finite_values_fails_and_stores_nothing(maker: sessionmaker[Session],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import molrg
    from db.models import SampleSet
    from tests.workers.test_pipelines import _fitted_model

    model_id = _fitted_model(maker)
    real_sample = molrg.MoLRGDiffusion.sample

    def sample_with_nan(self: molrg.MoLRGDiffusion, *args: object, **kwargs: object) -> object:
        out = real_sample(self, *args, **kwargs)
        out[1, 2] = float("nan")
        return out

    monkeypatch.setattr(molrg.MoLRGDiffusion, "sample", sample_with_nan)
    job_id = add_job(maker, JobKind.sample, {"model_id": model_id, "n_samples": 6, "sampler": "heun", "steps": 4,
                                             "seed": 1})
    assert run(maker, JobKind.sample, job_id) == Outcome.failed
    error = _assert_user_facing(get_job(maker, job_id).error)
    assert "1 of 36 sampled values are NaN or infinite" in error, error
    with maker() as s:
        assert s.scalar(select(func.count()).select_from(SampleSet).where(SampleSet.job_id == job_id)) == 0
