"""Neural and empirical fit/sample jobs through the pipelines (no Celery), on SQLite and PostgreSQL."""

import io
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker, undefer

from db.enums import JobKind, JobStatus
from db.models import Dataset, FittedModel, Job, MetricPoint, Plot, SampleSet
from db.session import session_scope
from molrg.neural import NeuralDiffusion
from tests.db.dbfixtures import add_dataset, add_job, fit_params, get_job
from tests.workers.test_pipelines import _cancel_once_running, count, run
from workers import codec, neural
from workers.pipelines import Outcome

TINY = {"width": 32, "depth": 2, "emb_dim": 16, "steps": 30, "batch_size": 32}


def _model(maker: sessionmaker[Session], job_id: uuid.UUID) -> FittedModel:
    with maker() as s:
        row = s.scalars(select(FittedModel).options(undefer(FittedModel.weights_safetensors),
                                                    undefer(FittedModel.bases_npz))
                        .where(FittedModel.job_id == job_id)).one()
        s.expunge(row)
        return row


def _loss_rows(maker: sessionmaker[Session], job_id: uuid.UUID) -> list[tuple[int, float]]:
    with maker() as s:
        return [(int(a), float(b)) for a, b in s.execute(
            select(MetricPoint.step, MetricPoint.value)
            .where(MetricPoint.job_id == job_id, MetricPoint.name == "loss").order_by(MetricPoint.step)).all()]


def _dataset_X(maker: sessionmaker[Session], ds: uuid.UUID) -> np.ndarray:
    with maker() as s:
        return codec.npy_to_array(s.scalar(select(Dataset.data_npy).where(Dataset.id == ds)))


def _sample(maker: sessionmaker[Session], model_id: str, n: int = 40, sampler: str = "heun",
            steps: int = 10) -> dict[str, Any]:
    job = add_job(maker, JobKind.sample, {"model_id": model_id, "n_samples": n, "sampler": sampler,
                                          "steps": steps, "seed": 3})
    assert run(maker, JobKind.sample, job) == Outcome.succeeded, get_job(maker, job).error
    with maker() as s:
        ss = s.scalars(select(SampleSet).options(undefer(SampleSet.samples_npy)).where(SampleSet.job_id == job)).one()
        return {"diagnostics": ss.diagnostics, "samples": codec.npy_to_array(ss.samples_npy)}


def test_neural_fit_job_stores_model_weights_loss_and_subspaces(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=24, dims=(2, 2), ambient=8)
    params = fit_params(ds, "neural", [2, 2], TINY, seed=5)
    job_id = add_job(maker, JobKind.fit, params)
    assert run(maker, JobKind.fit, job_id) == Outcome.succeeded, get_job(maker, job_id).error
    job = get_job(maker, job_id)
    assert job.status == JobStatus.succeeded and job.progress == 1.0
    detail = job.progress_detail or {}
    assert detail["total_steps"] == 30 and 1 <= detail["step"] <= 30 and np.isfinite(detail["loss"])
    rows = _loss_rows(maker, job_id)
    assert [s for s, _ in rows] == list(range(30)) and all(np.isfinite(v) for _, v in rows)
    m = _model(maker, job_id)
    assert m.method == "neural" and m.ambient_dim == 8 and sorted(m.dims) == [2, 2]
    assert m.config["width"] == 32 and m.config["seed"] == 5 and m.config["n_members"] == 1
    assert m.metrics["final_loss"] == pytest.approx(rows[-1][1]) and m.metrics["steps_done"] == 30
    sub = m.metrics["learned_subspaces"]
    assert sub["labels"] == "ground_truth" and sub["read_from"] == "jacobian"
    # projection distance, at most sqrt(2 d) = 2 here (30 steps: not trained to recover anything)
    assert 0 <= m.metrics["recovery_error"] <= 2 + 1e-9 and len(m.metrics["recovery_errors"]) == 2
    assert "vs_lowrank" in sub and "lowrank_vs_truth" in sub
    assert [b.shape for b in codec.npz_to_bases(m.bases_npz)] == [(8, 2), (8, 2)]
    # The stored weights are the network the job trained: the same training here gives the same denoiser.
    assert m.weights_safetensors is not None
    loaded = neural.load_weights(m.weights_safetensors)
    spec_fit = codec.fit_params(params)
    assert isinstance(spec_fit, neural.spec.NeuralFit)
    again = NeuralDiffusion(neural.neural_config(spec_fit), device="cpu").fit(_dataset_X(maker, ds))
    x = torch.randn(16, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for sigma in (0.01, 0.5, 20.0):
        torch.testing.assert_close(loaded.denoise(x, sigma), again.denoise(x, sigma), rtol=1e-6, atol=1e-7)
    with maker() as s:  # loss, projection onto the learned subspaces, Jacobian rank ratio vs sigma
        kinds = set(s.scalars(select(Plot.kind).where(Plot.job_id == job_id)))
    assert kinds == {"loss", "projection", "jacobian"}
    # redelivery after a re-queue adds nothing
    with session_scope(maker) as s:
        s.get_one(Job, job_id).status = JobStatus.queued
    assert run(maker, JobKind.fit, job_id) == Outcome.succeeded
    assert count(maker, FittedModel, job_id) == 1 and len(_loss_rows(maker, job_id)) == 30


def test_cancel_neural_fit_mid_training(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=24, dims=(2, 2), ambient=8)
    job_id = add_job(maker, JobKind.fit, fit_params(ds, "neural", [2, 2], {**TINY, "steps": 1_000_000}))
    _cancel_once_running(maker, JobKind.fit, job_id)
    assert count(maker, FittedModel, job_id) == 0
    rows = _loss_rows(maker, job_id)  # the history so far is kept
    assert 1 <= len(rows) < 1_000_000 and [s for s, _ in rows] == list(range(len(rows)))
    detail = get_job(maker, job_id).progress_detail or {}
    assert detail["total_steps"] == 1_000_000 and detail["step"] >= 1


def test_sample_neural_halves_with_scores_and_reproducibility(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=24, dims=(2, 2), ambient=8)
    fit = add_job(maker, JobKind.fit, fit_params(ds, "neural", [2, 2], {**TINY, "split": "halves"}))
    assert run(maker, JobKind.fit, fit) == Outcome.succeeded, get_job(maker, fit).error
    m = _model(maker, fit)
    assert m.config["n_members"] == 2 and len(m.metrics["final_member_losses"]) == 2
    for sampler in ("heun", "ddim", "sde"):
        out = _sample(maker, str(m.id), sampler=sampler)
        d = out["diagnostics"]
        assert out["samples"].shape == (40, 8) and np.isfinite(out["samples"]).all()
        mem = d["memorisation"]
        assert 0 <= mem["memorised_fraction"] <= 1 and 0 <= mem["generalisation_score"] <= 1
        assert 0 <= d["true"]["on_support_fraction"] <= 1 and d["true"]["on_support_threshold"] == 0.2
        assert d["model"] == {"method": "neural", "member": 0, "members": 2, "train_rows": 12}
        rep = d["reproducibility"]
        assert rep["n_pairs"] == 40 and rep["threshold"] == 0.9 and 0 <= rep["reproducible_fraction"] <= 1
        assert "fitted" in d and "residual" in d["fitted"]  # the low-rank keys are there too


def test_empirical_model_memorises(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=16, dims=(2, 2), ambient=8)
    fit = add_job(maker, JobKind.fit, fit_params(ds, "empirical", [2, 2]))
    assert run(maker, JobKind.fit, fit) == Outcome.succeeded, get_job(maker, fit).error
    m = _model(maker, fit)
    assert m.method == "empirical" and m.weights_safetensors is None and m.config["train_rows"] == 16
    assert _loss_rows(maker, fit) == []
    d = _sample(maker, str(m.id), n=60, steps=18)["diagnostics"]
    assert d["memorisation"]["memorised_fraction"] >= 0.9, d["memorisation"]
    assert d["memorisation"]["generalisation_score"] <= 0.1, d["memorisation"]
    assert d["true"]["on_support_fraction"] >= 0.9  # training points lie on the true subspaces
    assert "reproducibility" not in d


def test_lowrank_sample_sets_carry_the_scores(maker: sessionmaker[Session]) -> None:
    ds = add_dataset(maker, n=12, dims=(2,), ambient=6)
    fit = add_job(maker, JobKind.fit, fit_params(ds, "pca", [2]))
    assert run(maker, JobKind.fit, fit) == Outcome.succeeded
    d = _sample(maker, str(get_job(maker, fit).result["model_id"]), n=30)["diagnostics"]  # type: ignore[index]
    assert d["true"]["on_support_fraction"] >= 0.99  # the exact model's samples lie on the true subspace
    assert d["memorisation"]["generalisation_score"] == pytest.approx(
        1 - d["memorisation"]["memorised_fraction"])  # all on support: the two definitions agree
    assert {"ratio_median", "frequencies"} <= set(d["memorisation"]) | set(d["true"])


@pytest.mark.slow
def test_50mb_checkpoint_stores_and_downloads(maker: sessionmaker[Session], db_url: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A 54 MB checkpoint (mlp 2048 x 4 on n = 48, one step) is stored by the job and streamed by the API."""
    monkeypatch.setenv("MOLRG_PLOTS", "0")  # figures of a one-step network are not the point here
    from fastapi.testclient import TestClient

    from db.session import make_engine, make_sessionmaker
    from service.auth import create_api_key
    from service.main import create_app
    from service.settings import ServiceSettings

    ds = add_dataset(maker, n=48, dims=(4, 4), ambient=48)
    fit = add_job(maker, JobKind.fit, fit_params(ds, "neural", [4, 4],
                                                 {"width": 2048, "depth": 4, "steps": 1, "batch_size": 16}))
    assert run(maker, JobKind.fit, fit) == Outcome.succeeded, get_job(maker, fit).error
    model = _model(maker, fit)
    assert model.weights_safetensors is not None and len(model.weights_safetensors) > 50e6
    stored = neural.load_weights(model.weights_safetensors)
    app = create_app(ServiceSettings(data_dir=tmp_path / "data", database_url=db_url))
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            _row, key = create_api_key(s, name="t", owner="test")
        with TestClient(app) as client:
            headers = {"Authorization": f"Bearer {key}"}
            meta = client.get(f"/api/v1/models/{model.id}", headers=headers).json()
            assert meta["links"]["weights"] == f"/api/v1/models/{model.id}/weights.safetensors"
            r = client.get(meta["links"]["weights"], headers=headers)
            assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
            assert r.content == model.weights_safetensors
    finally:
        engine.dispose()
    from safetensors.torch import load

    tensors = load(io.BytesIO(r.content).getvalue())
    again = NeuralDiffusion.from_state_dict(neural.NeuralConfig.from_json(neural.weights_metadata(r.content)["config"]),
                                            tensors)
    x = torch.randn(4, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.denoise(x, 0.3), stored.denoise(x, 0.3), rtol=0, atol=0)
