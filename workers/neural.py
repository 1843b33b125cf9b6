"""Neural and empirical fits, and sampling from them, as jobs (spec sections 12-13).

* ``neural``: :class:`molrg.neural.NeuralDiffusion` trained on the dataset on the worker's device (CUDA
  when the child has it), one heartbeat report per step with the loss, cancel between steps; the loss
  history (mean over members) as ``loss`` metric rows; the weights as safetensors bytes
  (``FittedModel.weights_safetensors``, with the config in the file's metadata, so the download alone
  rebuilds the denoiser: :func:`load_weights`).
* ``empirical``: the posterior mean of the training set; nothing is trained and the model keeps only its
  dataset reference (``dataset_id``): sampling rebuilds it from the dataset rows.
* Both: the subspaces read from the denoiser's Jacobian at low noise (spec section 13,
  :func:`molrg.analysis.jacobian.learned_subspaces`) at points labelled by the ground truth when the
  dataset has it, else by a subspace-clustering fit of the same data; stored as ``bases_npz`` with their
  recovery error against the truth and against that low-rank fit in ``metrics``.
* Sample sets from every model kind carry the section-13 scores (:func:`with_scores`); a
  ``split: "halves"`` model samples both members from the same noise and adds ``reproducibility``.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker, undefer

from db import jobs
from db.models import Dataset, FittedModel, SampleSet
from db.session import session_scope
from molrg import spec
from molrg.neural import EmpiricalDiffusion, NeuralConfig, NeuralDiffusion
from workers import codec, figures, finite
from workers.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "molrg.neural.NeuralDiffusion"
SUBSPACE_SIGMA = 0.05  # noise level of the Jacobian read-out (section 13: "at low noise")
SUBSPACE_POINTS = 32  # points per component


def neural_config(fit: spec.NeuralFit) -> NeuralConfig:
    """THE translation of a neural fit request into the library's config (every option, the fit's seed)."""
    return NeuralConfig(**fit.options.model_dump(), seed=int(fit.seed))


def weights_bytes(model: NeuralDiffusion) -> bytes:
    """The model's ``state_dict`` as safetensors bytes, its config JSON in the metadata."""
    from safetensors.torch import save

    return save(model.state_dict(), metadata={"format": WEIGHTS_FORMAT, "config": model.config.to_json()})


def weights_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (the header: 8-byte little-endian length, then JSON)."""
    size = int.from_bytes(data[:8], "little")
    if len(data) < 8 + size:
        raise ValueError("not a safetensors file (truncated header)")
    return dict(json.loads(data[8 : 8 + size]).get("__metadata__") or {})


def load_weights(data: bytes, device: torch.device | str | None = None) -> NeuralDiffusion:
    """Rebuild the fitted denoiser from :func:`weights_bytes` output (what ``weights.safetensors`` serves)."""
    from safetensors.torch import load

    meta = weights_metadata(data)
    if meta.get("format") != WEIGHTS_FORMAT or "config" not in meta:
        raise ValueError("not a molrg neural weights file (metadata format/config missing)")
    return NeuralDiffusion.from_state_dict(NeuralConfig.from_json(meta["config"]), load(data), device=device)


# ---------------------------------------------------------------- learned subspaces


def _labels_and_lowrank(fit: spec.FitVariant, X: torch.Tensor, labels_npy: bytes | None,
                        true_bases: list[np.ndarray] | None) -> tuple[torch.Tensor, list[int], str, list[Any]]:
    """Point labels for the Jacobian read-out, the dims in label order, their source, and a
    subspace-clustering fit of the same data (the low-rank comparison)."""
    import molrg
    from molrg.analysis.metrics import assign_components
    from molrg.bases import pad_bases

    lowrank = molrg.MoLRGDiffusion(fit.n_components, list(fit.dims), "subspace_clustering", seed=fit.seed,
                                   device="cpu").fit(X)
    lr_bases = [torch.as_tensor(codec.to_numpy(U), dtype=torch.float64) for U in lowrank.bases_]
    if true_bases is not None and labels_npy is not None and len(true_bases) == fit.n_components:
        labels = torch.as_tensor(codec.npy_to_array(labels_npy), dtype=torch.int64)
        if labels.shape == (X.shape[0],):
            return labels, [int(U.shape[1]) for U in true_bases], "ground_truth", lr_bases
    labels = assign_components(X, pad_bases(lr_bases))
    return labels, [int(U.shape[1]) for U in lr_bases], "subspace_clustering", lr_bases


def learned_subspaces(denoiser: Any, fit: spec.FitVariant, X_np: np.ndarray, labels_npy: bytes | None,
                      true_bases: list[np.ndarray] | None, device: torch.device) -> tuple[list[np.ndarray], list[float],
                                                                                          dict[str, Any]]:
    """Bases read from the denoiser's Jacobian, mixture weights (label fractions), and the metrics block."""
    from molrg.analysis.jacobian import learned_subspaces as read_subspaces
    from molrg.analysis.metrics import recovery_report

    X = torch.as_tensor(X_np, dtype=torch.float64)
    labels, dims, source, lr_bases = _labels_and_lowrank(fit, X, labels_npy, true_bases)
    present = [k for k in range(len(dims)) if bool((labels == k).any())]
    if len(present) < len(dims):  # an empty cluster: read only the components that have points
        logger.warning("learned subspaces: components %s have no points", sorted(set(range(len(dims))) - set(present)))
    bases = [B.cpu() for B in read_subspaces(denoiser, X.to(device), labels.to(device), dims, SUBSPACE_SIGMA,
                                             n_points=SUBSPACE_POINTS, seed=fit.seed)] if len(present) == len(dims) \
        else lr_bases
    counts = torch.bincount(labels, minlength=len(dims)).double()
    weights = [float(w) for w in counts / counts.sum()]
    block: dict[str, Any] = {"sigma": SUBSPACE_SIGMA, "n_points": SUBSPACE_POINTS, "labels": source,
                             "dims": dims, "read_from": "jacobian" if len(present) == len(dims) else "lowrank"}
    out: dict[str, Any] = {"learned_subspaces": block, "recovery_error": None, "recovery_errors": None}
    if true_bases is not None and len(true_bases) == len(bases):
        truth = [torch.as_tensor(U, dtype=torch.float64) for U in true_bases]
        rep = recovery_report(bases, truth)
        out["recovery_error"], out["recovery_errors"] = rep["max_error"], rep["errors"]
        block["vs_truth"] = rep
        block["lowrank_vs_truth"] = recovery_report(lr_bases, truth)
    block["vs_lowrank"] = recovery_report(bases, lr_bases)
    return [B.numpy() for B in bases], weights, out


# ---------------------------------------------------------------- fit


def run_fit(maker: sessionmaker[Session], claim: jobs.Claim, device: torch.device, hb: Heartbeat,
            params: spec.FitVariant) -> Any:
    """A neural or empirical fit job (called by ``workers.pipelines.run_fit``)."""
    from workers import pipelines as pl

    with maker() as session:
        done = session.scalar(select(FittedModel.id).where(FittedModel.job_id == claim.job_id))
        if done is not None:
            return pl._finish_existing(maker, claim, {"model_id": str(done)})
        ds = pl._load_dataset(session, params.dataset_id)
        labels_npy = session.scalar(select(Dataset.labels_npy).where(Dataset.id == ds.id))
        data_npy, truth_npz, has_truth = ds.data_npy, ds.bases_npz, ds.has_ground_truth
    assert data_npy is not None
    X_np = codec.npy_to_array(data_npy).astype(np.float64, copy=False)
    true_bases = codec.npz_to_bases(truth_npz) if has_truth and truth_npz else None
    history: list[float] = []
    weights_blob: bytes | None = None
    if isinstance(params, spec.NeuralFit):
        model = NeuralDiffusion(neural_config(params), device=device)

        def on_step(p: Any) -> bool:
            loss = float(np.mean(p.loss))
            detail: dict[str, Any] = {"step": int(p.step), "total_steps": int(p.total_steps), "loss": loss,
                      "elapsed_s": round(float(p.elapsed_s), 3)}
            if len(p.loss) > 1:
                detail["member_losses"] = [float(v) for v in p.loss]
            hb.report(min(p.step / max(p.total_steps, 1), 1.0), codec.jsonable(detail))
            return hb.should_stop

        model.fit(X_np, callback=on_step)
        assert model.loss_history_ is not None
        history = [float(v) for v in model.loss_history_.double().mean(0)]
        if hb.should_stop:
            return pl._stopped(maker, claim, hb, history)
        finite.check_fit(history, [], [], X_np)
        if any(not bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point()):
            raise finite.NonFiniteResult("the trained weights are NaN or infinite; lower options.lr")
        weights_blob = weights_bytes(model)
        denoiser, config = model.denoiser(0), {
            **model.config.to_dict(), "n_members": model.n_members, "n_parameters": model.networks.n_parameters,
            "sigma_data_used": [float(s) for s in model.networks.sigma_data], "device": str(device)}
        extra = {"final_loss": history[-1] if history else None, "steps_done": int(model.steps_done_),
                 "fit_seconds": float(model.fit_seconds_), "stopped": bool(model.stopped_),
                 "final_member_losses": [float(v) for v in model.loss_history_[:, -1]]
                 if model.steps_done_ else None, "n_parameters": model.networks.n_parameters}
    else:
        hb.report(0.5, {"step": 0, "total_steps": 1})
        emp = EmpiricalDiffusion(device=device).fit(torch.as_tensor(X_np))
        denoiser, config = emp.denoiser(0), {"train_rows": int(X_np.shape[0]), "device": str(device),
                                             "reference": "dataset"}
        extra = {"final_loss": None, "stopped": False}
    bases, weights, metrics = learned_subspaces(denoiser, params, X_np, labels_npy, true_bases, device)
    metrics = codec.jsonable({**metrics, **extra})
    bases_npz = codec.bases_to_npz(bases)
    hb.stop()
    with session_scope(maker) as session:
        model_id = uuid.uuid4()
        if not jobs.finish_job(session, claim.job_id, claim.attempt, {"model_id": str(model_id)}):
            session.rollback()
            return pl.Outcome.lost
        session.add(FittedModel(
            id=model_id, owner=claim.owner, job_id=claim.job_id, dataset_id=params.dataset_id, method=params.method,
            n_components=params.n_components, ambient_dim=int(X_np.shape[1]), dims=[int(B.shape[1]) for B in bases],
            weights=weights, config=codec.jsonable(config), seed=params.seed, metrics=metrics, bases_npz=bases_npz,
            weights_safetensors=weights_blob,
        ))
        pl._store_loss(session, claim.job_id, history)
    pl.store_figures(maker, claim.job_id, lambda: figures.neural_fit_figures(
        denoiser, X_np, history, bases, params.method, seed=params.seed))
    return pl.Outcome.succeeded


# ---------------------------------------------------------------- sampling


def with_scores(diagnostics: dict[str, Any], samples: torch.Tensor, train_X: torch.Tensor | None,
                true_bases: list[torch.Tensor] | None) -> dict[str, Any]:
    """``sample_diagnostics`` output with the section-13 scores merged in: ``memorisation`` gains the
    generalisation score (on support and not memorised with ground truth, else ``1 - memorised_fraction``),
    ``true`` gains ``on_support_fraction`` and its threshold (molrg.analysis.scores documents both)."""
    from molrg.analysis.scores import sample_scores

    scores = sample_scores(samples, train_X if train_X is not None and train_X.shape[0] >= 2 else None, true_bases)
    out = dict(diagnostics)
    for key, block in scores.items():
        out[key] = {**out.get(key, {}), **block}
    return out


def run_sample(maker: sessionmaker[Session], claim: jobs.Claim, device: torch.device, hb: Heartbeat,
               params: spec.SampleJob) -> Any:
    """Samples from a neural or empirical model (called by ``workers.pipelines.run_sample``)."""
    from molrg.analysis.diagnostics import sample_diagnostics
    from molrg.analysis.scores import reproducibility
    from workers import pipelines as pl

    with maker() as session:
        done = session.scalar(select(SampleSet.id).where(SampleSet.job_id == claim.job_id))
        if done is not None:
            return pl._finish_existing(maker, claim, {"sample_set_id": str(done)})
        row = session.execute(select(FittedModel).options(
            undefer(FittedModel.bases_npz), undefer(FittedModel.weights_safetensors))
            .where(FittedModel.id == params.model_id)).scalar_one_or_none()
        if row is None:
            raise pl.JobFailed(f"model {params.model_id} not found")
        ds = pl._load_dataset(session, row.dataset_id)
        method, bases_npz, blob, weights = row.method, row.bases_npz, row.weights_safetensors, list(row.weights)
        data_npy, truth_npz, has_truth = ds.data_npy, ds.bases_npz, ds.has_ground_truth
    assert data_npy is not None
    X_np = codec.npy_to_array(data_npy).astype(np.float64, copy=False)
    X = torch.as_tensor(X_np)
    model: NeuralDiffusion | EmpiricalDiffusion
    if method == "neural":
        if blob is None:
            raise pl.JobFailed(f"model {params.model_id} has no stored weights")
        model = load_weights(blob, device)
        rows = [model.training_rows(b) for b in range(model.n_members)]
    else:
        model = EmpiricalDiffusion(device=device).fit(X)
        rows = [torch.arange(X.shape[0])]
    members = len(rows)
    total = params.steps * members

    def sample_member(b: int) -> torch.Tensor:
        def on_step(info: dict[str, Any]) -> None:
            step = b * params.steps + int(info["i"]) + 1
            hb.report(min(step / total, 1.0), {"step": step, "total_steps": total, "sigma": float(info["sigma"]),
                                               "member": b})
            if hb.should_stop:
                raise pl._StopRun

        return model.sample(params.n_samples, seed=params.seed, sampler=params.sampler, steps=params.steps,
                            member=b, callback=on_step).detach().cpu().to(torch.float64)

    try:
        drawn = [sample_member(b) for b in range(members)]
    except pl._StopRun:
        return pl._stopped(maker, claim, hb)
    if hb.should_stop:
        return pl._stopped(maker, claim, hb)
    samples = drawn[0]
    finite.check_samples(samples, X_np)
    true_bases = [torch.as_tensor(U, dtype=torch.float64) for U in codec.npz_to_bases(truth_npz)] \
        if has_truth and truth_npz else None
    bases = [torch.as_tensor(U, dtype=torch.float64) for U in codec.npz_to_bases(bases_npz)]
    train = X[rows[0]]
    diag = sample_diagnostics(samples, bases, weights=torch.as_tensor(weights, dtype=torch.float64),
                              true_bases=true_bases, train_X=train if train.shape[0] >= 2 else None)
    diag = with_scores(diag, samples, train, true_bases)
    diag["model"] = {"method": method, "member": 0, "members": members, "train_rows": int(train.shape[0])}
    if members == 2:
        finite.check_samples(drawn[1], X_np)
        diag["reproducibility"] = reproducibility(drawn[0], drawn[1])
    diagnostics = codec.jsonable(diag)
    return pl.store_sample_set(maker, claim, hb, params, samples, diagnostics, lambda samples_npy: figures.sample_figures(
        codec.npy_to_array(samples_npy), X_np[rows[0].numpy()], codec.npz_to_bases(bases_npz)))


