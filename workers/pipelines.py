"""Job pipelines: claim -> load rows -> run molrg -> persist results + metrics + terminal status at once.

Idempotency: a run owns its job through ``(status in running/cancelling, attempts = my attempt)``;
results are written in the same transaction as the guarded terminal UPDATE and the result tables
are ``UNIQUE(job_id)``, so a redelivered, duplicated or stale run can never add a second result.
"""

import dataclasses
import logging
import socket
import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import numpy as np
import torch
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import delete, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker, undefer

import molrg
from db import jobs
from db.enums import JobKind
from db.models import Dataset, FittedModel, MetricPoint, Plot, SampleSet
from db.session import session_scope
from molrg.analysis.metrics import explained_energy, recovery_report, subspace_clustering_objective
from molrg.bases import pad_bases
from molrg.spec import NEURAL_METHODS
from workers import codec, figures, finite
from workers.heartbeat import Heartbeat
from workers.settings import WorkerSettings

logger = logging.getLogger(__name__)

# Infrastructure errors worth a retry (connection lost, database locked); anything else is the job's fault.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sa_exc.OperationalError, sa_exc.InterfaceError,
                                                      sa_exc.TimeoutError, ConnectionError)


class Outcome(StrEnum):
    """How one delivery of a job ended."""

    skipped = "skipped"  # not queued when claimed: done, running elsewhere or cancelled
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    lost = "lost"  # ownership lost mid-run (re-queued by the reaper): nothing written


class JobFailed(Exception):
    """A deterministic, user-facing failure of a job (bad params, missing rows)."""


class _StopRun(Exception):
    """Raised from a progress callback to stop a run the heartbeat says must stop."""


Runner = Callable[[sessionmaker[Session], jobs.Claim, torch.device, Heartbeat], Outcome]


def execute(
    kind: JobKind | str,
    job_id: uuid.UUID,
    *,
    maker: sessionmaker[Session],
    settings: WorkerSettings,
    device: Callable[[], torch.device],
    hostname: str | None = None,
) -> Outcome:
    """Claim the job, run its pipeline under a heartbeat, and record the terminal status."""
    kind = JobKind(kind)
    with session_scope(maker) as session:
        claim = jobs.claim_job(session, job_id, hostname or socket.gethostname())
    if claim is None:
        logger.info("job %s is not queued; delivery ignored", job_id)
        return Outcome.skipped
    if claim.kind != kind:
        return _fail(maker, claim, f"JobFailed: job is a {claim.kind} job, delivered to molrg.{kind}")
    limit = claim.max_attempts or settings.job_max_attempts  # the row's limit, as the reaper uses it
    if claim.attempt > limit:
        return _fail(maker, claim, f"JobFailed: gave up after {claim.attempt - 1} attempts (max_attempts={limit})")
    logger.info("job %s (%s) attempt %d started", job_id, kind, claim.attempt)
    try:
        with Heartbeat(maker, job_id, claim.attempt, settings.heartbeat_interval_s) as hb:
            outcome = RUNNERS[kind](maker, claim, device(), hb)
    except SoftTimeLimitExceeded:
        return _fail(maker, claim, f"TimeLimitExceeded: time limit of {settings.time_limit_s(kind)} s exceeded")
    except TRANSIENT_ERRORS:
        logger.exception("job %s attempt %d: transient infrastructure error", job_id, claim.attempt)
        _release(maker, claim)
        raise
    except Exception as exc:
        logger.exception("job %s attempt %d failed", job_id, claim.attempt)
        return _fail(maker, claim, finite.user_message(exc))  # no SQL, parameters or traceback
    logger.info("job %s attempt %d: %s", job_id, claim.attempt, outcome)
    return outcome


def _fail(maker: sessionmaker[Session], claim: jobs.Claim, error: str) -> Outcome:
    with session_scope(maker) as session:
        owned = jobs.fail_job(session, claim.job_id, claim.attempt, error)
    return Outcome.failed if owned else Outcome.lost


def _release(maker: sessionmaker[Session], claim: jobs.Claim) -> None:
    try:
        with session_scope(maker) as session:
            jobs.release_job(session, claim.job_id, claim.attempt)
    except Exception:  # the database may be the thing that is down: the reaper will re-queue
        logger.exception("could not release job %s", claim.job_id)


def _stopped(maker: sessionmaker[Session], claim: jobs.Claim, hb: Heartbeat,
             loss: list[float] | None = None) -> Outcome:
    """Record the end of a run that stopped on request: cancelled (keeping the loss history so far), or
    nothing when ownership was lost."""
    hb.stop()
    if hb.lost.is_set():
        return Outcome.lost
    with session_scope(maker) as session:
        owned = jobs.mark_cancelled(session, claim.job_id, claim.attempt)
        if owned:
            _store_loss(session, claim.job_id, loss or [])
    return Outcome.cancelled if owned else Outcome.lost


def _store_loss(session: Session, job_id: uuid.UUID, history: list[float]) -> None:
    """The job's ``loss`` metric rows, replacing any of an earlier attempt (idempotent)."""
    session.execute(delete(MetricPoint).where(MetricPoint.job_id == job_id, MetricPoint.name == "loss"))
    if history:
        session.execute(insert(MetricPoint), [
            {"job_id": job_id, "name": "loss", "step": i, "value": v}
            for i, v in enumerate(history) if np.isfinite(v)  # a finished fit has none other (finite.check_fit)
        ])


def _finish_existing(maker: sessionmaker[Session], claim: jobs.Claim, result: dict[str, Any]) -> Outcome:
    """A previous attempt already stored this job's result: announce it instead of computing again."""
    with session_scope(maker) as session:
        owned = jobs.finish_job(session, claim.job_id, claim.attempt, result)
    return Outcome.succeeded if owned else Outcome.lost


def _load_dataset(session: Session, dataset_id: uuid.UUID, *, with_truth: bool = True) -> Dataset:
    opts = [undefer(Dataset.data_npy)] + ([undefer(Dataset.bases_npz)] if with_truth else [])
    ds = session.execute(select(Dataset).options(*opts).where(Dataset.id == dataset_id)).scalar_one_or_none()
    if ds is None or ds.data_npy is None:
        raise JobFailed(f"dataset {dataset_id} not found or has no data")
    return ds


def fit_metrics(est: Any, X: torch.Tensor, true_bases: list[np.ndarray] | None) -> dict[str, Any]:
    """The FittedModel.metrics dict (recovery vs ground truth when known, objectives, final loss)."""
    U_hat = pad_bases([torch.as_tensor(codec.to_numpy(U), dtype=torch.float64) for U in est.bases_])
    X64 = X.detach().to("cpu", torch.float64)
    objectives = codec.jsonable(getattr(est, "objectives_", None) or {})
    recovery_error: float | None = None
    recovery_errors: list[float] | None = None
    if true_bases and len(true_bases) == len(est.bases_):  # no recovery error when K differs from the truth
        report = recovery_report(U_hat, pad_bases([torch.as_tensor(U, dtype=torch.float64) for U in true_bases]))
        recovery_error = float(report["max_error"])  # type: ignore[arg-type]
        recovery_errors = [float(e) for e in report["errors"]]  # type: ignore[attr-defined]
    history = [float(v) for v in (getattr(est, "loss_history_", None) or [])]
    return codec.jsonable({
        "recovery_error": recovery_error,
        "recovery_errors": recovery_errors,
        "diffusion_loss": codec.as_float(objectives.get("diffusion_loss")),
        "subspace_clustering_objective": codec.as_float(
            objectives.get("subspace_clustering_objective", subspace_clustering_objective(X64, U_hat))),
        "explained_energy": codec.as_float(objectives.get("explained_energy", explained_energy(X64, U_hat))),
        "final_loss": history[-1] if history else None,
        "stopped": bool(getattr(est, "stopped_", False)),
        "info": getattr(est, "info_", None) or {},
    })


def run_fit(maker: sessionmaker[Session], claim: jobs.Claim, device: torch.device, hb: Heartbeat) -> Outcome:
    """Fit a MoLRG model on the job's dataset; store the model, its metrics and loss history."""
    params = codec.fit_params(claim.params)
    if params.method in NEURAL_METHODS:  # networks and the empirical reference: workers/neural.py
        from workers import neural

        return neural.run_fit(maker, claim, device, hb, params)
    dataset_id = params.dataset_id
    with maker() as session:
        done = session.scalar(select(FittedModel.id).where(FittedModel.job_id == claim.job_id))
        if done is not None:
            return _finish_existing(maker, claim, {"model_id": str(done)})
        ds = _load_dataset(session, dataset_id)
        data_npy, truth_npz, has_truth = ds.data_npy, ds.bases_npz, ds.has_ground_truth
    assert data_npy is not None
    X_np = codec.npy_to_array(data_npy)
    X = codec.to_tensor(X_np, device)
    true_bases = codec.npz_to_bases(truth_npz) if has_truth and truth_npz else None

    def on_step(p: Any) -> bool:
        # FitProgress.fraction: restarts run batched count once; an early stop (or a warm start already
        # converged at step 0) reports 1.0 with its true last step.
        hb.report(float(p.fraction), codec.jsonable(dataclasses.asdict(p)))
        return hb.should_stop

    est = molrg.MoLRGDiffusion(**codec.estimator_kwargs(params, device))
    try:
        est.fit(X, callback=on_step)
    except Exception as exc:
        finite.explain_fit_error(exc, X_np)  # data whose scale overflows float64: say so
        raise
    if hb.should_stop:
        return _stopped(maker, claim, hb, [float(v) for v in (getattr(est, "loss_history_", None) or [])])

    history = [float(v) for v in (getattr(est, "loss_history_", None) or [])]
    finite.check_fit(history, est.bases_, est.weights_, X_np)  # NaN/inf fail the job before anything is stored
    metrics = fit_metrics(est, X, true_bases)
    bases_npz = codec.bases_to_npz(est.bases_, getattr(est, "mean_", None))
    hb.stop()
    with session_scope(maker) as session:
        model_id = uuid.uuid4()
        if not jobs.finish_job(session, claim.job_id, claim.attempt, {"model_id": str(model_id)}):
            session.rollback()
            return Outcome.lost
        session.add(FittedModel(
            id=model_id, owner=claim.owner, job_id=claim.job_id, dataset_id=dataset_id, method=params.method,
            n_components=params.n_components, ambient_dim=int(X.shape[-1]), dims=list(params.dims),
            weights=[float(w) for w in codec.to_numpy(torch.as_tensor(est.weights_)).reshape(-1)],
            config=codec.jsonable(est.get_config()), seed=params.seed, metrics=metrics, bases_npz=bases_npz,
        ))
        _store_loss(session, claim.job_id, history)
    store_figures(maker, claim.job_id, lambda: figures.fit_figures(
        est, codec.npy_to_array(data_npy), history, params.method, seed=params.seed))
    return Outcome.succeeded


def run_sample(maker: sessionmaker[Session], claim: jobs.Claim, device: torch.device, hb: Heartbeat) -> Outcome:
    """Draw samples from a fitted model; store them with their diagnostics."""
    from molrg.analysis.diagnostics import sample_diagnostics
    from workers.neural import run_sample as run_neural_sample
    from workers.neural import with_scores

    params = codec.sample_params(claim.params)
    model_id = params.model_id
    with maker() as session:
        method = session.scalar(select(FittedModel.method).where(FittedModel.id == model_id))
    if method in NEURAL_METHODS:  # networks and the empirical reference: workers/neural.py
        return run_neural_sample(maker, claim, device, hb, params)
    with maker() as session:
        done = session.scalar(select(SampleSet.id).where(SampleSet.job_id == claim.job_id))
        if done is not None:
            return _finish_existing(maker, claim, {"sample_set_id": str(done)})
        model = session.execute(
            select(FittedModel).options(undefer(FittedModel.bases_npz)).where(FittedModel.id == model_id)
        ).scalar_one_or_none()
        if model is None:
            raise JobFailed(f"model {model_id} not found")
        ds = _load_dataset(session, model.dataset_id)
        bases_npz, weights = model.bases_npz, list(model.weights)
        data_npy, truth_npz, has_truth = ds.data_npy, ds.bases_npz, ds.has_ground_truth
        true_weights = (ds.spec or {}).get("weights") if has_truth else None
    assert data_npy is not None
    bases = [codec.to_tensor(U, device) for U in codec.npz_to_bases(bases_npz)]
    true_bases = ([codec.to_tensor(U, device) for U in codec.npz_to_bases(truth_npz)]
                  if has_truth and truth_npz else None)
    train_X = codec.to_tensor(codec.npy_to_array(data_npy), device)
    if hb.should_stop:
        return _stopped(maker, claim, hb)
    mean = codec.npz_mean(bases_npz)
    est = molrg.MoLRGDiffusion.from_bases(bases, weights, mean=None if mean is None else codec.to_tensor(mean, device),
                                          device=device)

    def on_step(info: dict[str, Any]) -> None:
        step = int(info["i"]) + 1
        hb.report(min(step / params.steps, 1.0), {"step": step, "total_steps": params.steps,
                                                  "sigma": float(info["sigma"])})
        if hb.should_stop:  # cancel requested or ownership lost: stop between sampler steps
            raise _StopRun

    try:
        samples = est.sample(**codec.sample_kwargs(params), callback=on_step)
    except _StopRun:
        return _stopped(maker, claim, hb)
    if hb.should_stop:
        return _stopped(maker, claim, hb)
    finite.check_samples(samples, codec.npy_to_array(data_npy))
    diagnostics = codec.jsonable(sample_diagnostics(
        samples, bases, weights=torch.as_tensor(weights, dtype=torch.float64, device=device),
        true_bases=true_bases, train_X=train_X,
        true_weights=true_weights if true_bases and isinstance(true_weights, list)
        and len(true_weights) == len(true_bases) else None,
    ))
    diagnostics = codec.jsonable(with_scores(diagnostics, samples, train_X, true_bases))  # section 13 scores
    return store_sample_set(maker, claim, hb, params, samples, diagnostics, lambda samples_npy: figures.sample_figures(
        codec.npy_to_array(samples_npy), codec.npy_to_array(data_npy), codec.npz_to_bases(bases_npz)))


def store_sample_set(maker: sessionmaker[Session], claim: jobs.Claim, hb: Heartbeat, params: Any, samples: Any,
                     diagnostics: dict[str, Any], render: Callable[[bytes], list[figures.Figure]]) -> Outcome:
    """Write a sample job's samples and diagnostics with its terminal status in one transaction, then its figures."""
    samples_npy = codec.array_to_npy(samples, dtype=np.float64)
    hb.stop()
    with session_scope(maker) as session:
        set_id = uuid.uuid4()
        if not jobs.finish_job(session, claim.job_id, claim.attempt, {"sample_set_id": str(set_id)}):
            session.rollback()
            return Outcome.lost
        session.add(SampleSet(
            id=set_id, owner=claim.owner, job_id=claim.job_id, model_id=params.model_id, n_samples=params.n_samples,
            sampler=params.sampler, steps=params.steps, seed=params.seed, diagnostics=diagnostics,
            samples_npy=samples_npy,
        ))
    store_figures(maker, claim.job_id, lambda: render(samples_npy))
    return Outcome.succeeded


def store_figures(maker: sessionmaker[Session], job_id: uuid.UUID, render: Callable[[], list[figures.Figure]]) -> None:
    """Render a finished job's figures AFTER its result is committed, so they are off the job's critical path.

    The job already reads ``succeeded``; its plots appear a moment later. Re-rendering replaces them,
    and a failure here is logged, never turned into a failed job.
    """
    if not figures.enabled():
        return
    try:
        figs = render()
        with session_scope(maker) as session:
            session.execute(delete(Plot).where(Plot.job_id == job_id))
            session.add_all(figures.rows(Plot, job_id, figs))
    except Exception:
        logger.exception("figures of job %s were not stored", job_id)


RUNNERS: dict[JobKind, Runner] = {JobKind.fit: run_fit, JobKind.sample: run_sample}


def run_reap(maker: sessionmaker[Session], settings: WorkerSettings,
             publish: Callable[[jobs.Republish], None]) -> jobs.ReapReport:
    """One reaper pass; republishes only after the transaction committed."""
    with session_scope(maker) as session:
        report = jobs.reap(session, settings.stale_after_s, settings.republish_after_s)
    for item in report.republished:
        try:
            publish(item)
        except Exception:  # the next pass republishes it (queued_at is old again by then)
            logger.exception("could not republish job %s", item.job_id)
    if report.requeued or report.failed or report.cancelled or report.republished:
        logger.info("reaper: requeued=%d failed=%d cancelled=%d republished=%d", len(report.requeued),
                    len(report.failed), len(report.cancelled), len(report.republished))
    return report
