"""Sample-scored sweep methods: a network per trial and the two references (spec sections 12-14).

For every (cell, trial) of a chunk, ``neural`` trains one EDM denoiser on the trial's data, and all
networks of the chunk train as ONE ensemble program (:func:`molrg.neural.training.train_ensemble`);
``empirical`` is the training set's own denoiser (memorises by construction) and ``exact`` the
true posterior mean with the trial's bases (generalises by construction). Each method then draws
``eval_samples`` Heun samples per trial, every member in one batched sampler call, and scores them
(section 13): memorised fraction, on-support fraction, generalisation score (on support and not
memorised). A trial's ``error`` is the recovery error of the subspaces read from the denoiser's
Jacobian at low noise (section 13), so it compares with the low-rank methods' error in the same cell;
its ``success`` is ``generalisation_score >= 0.5``.

Determinism: a trial's network seed and its sampling seed derive from (sweep seed, cell, trial) only,
members draw their own training noise (``train_ensemble``) and their own initial noise, and the
sampler is deterministic, so a trial's result does not depend on the chunk it ran in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from molrg.sweeps.grid import Cell, SweepGrid, derive_seed

if TYPE_CHECKING:
    from molrg.neural.ensemble import StackedNetworks

__all__ = [
    "JACOBIAN_POINTS",
    "JACOBIAN_SIGMA",
    "SUCCESS_SCORE",
    "ScoredOutcome",
    "ScoredTrial",
    "TrainStep",
    "eval_seed",
    "network_seed",
    "run_scored",
]

SUCCESS_SCORE = 0.5  # a sample-scored trial succeeds when its generalisation score reaches this (section 14)
JACOBIAN_SIGMA = 0.05  # noise level of the subspace read-out (section 13, "at low noise")
JACOBIAN_POINTS = 32  # points per component of the read-out
_BLOCK = 1 << 22  # elements of an (members x queries x training points) logit block held at once

Denoiser = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ScoredTrial:
    """One (cell, trial) of a chunk with its data: X (N, n), labels (N,), true bases (K, n, d)."""

    cell: Cell
    trial: int
    seed: int
    X: Tensor
    labels: Tensor
    bases: Tensor


@dataclass(frozen=True)
class ScoredOutcome:
    """Scores of one (trial, method) (section 13) and its share of the batched wall time."""

    error: float
    mean_error: float
    memorised_fraction: float
    on_support_fraction: float
    generalisation_score: float
    seconds: float
    info: dict[str, float | int | None]
    scores_by_step: dict[str, dict[str, float]] | None = None  # neural with eval_at_steps: step -> scores


@dataclass(frozen=True)
class TrainStep:
    """Training progress of a chunk's ensemble: after ``step`` of ``total_steps``, ``members`` networks."""

    step: int
    total_steps: int
    members: int
    loss: float  # mean over members of this step's loss


def network_seed(grid: SweepGrid, cell: Cell, trial: int) -> int:
    """Seed of a trial's network (initialisation, batches, training noise) (section 14)."""
    return derive_seed(int(grid.seed), "network", *(int(v) for v in cell), int(trial))


def eval_seed(grid: SweepGrid, cell: Cell, trial: int) -> int:
    """Seed of a trial's initial sampling noise, shared by every scored method of the trial (section 14)."""
    return derive_seed(int(grid.seed), "eval", *(int(v) for v in cell), int(trial))


def _members_denoiser(nets: StackedNetworks, B: int) -> Denoiser:
    """The B members as one flat ``D(x (B M, n), sigma (B M,))``: member b denoises rows b M .. (b+1) M."""

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:
        xb = x.reshape(B, -1, x.shape[-1])
        return nets.denoise_members(xb, sigma.reshape(B, -1)).reshape(x.shape).to(x.dtype)

    return denoiser


def _neural_denoiser(grid: SweepGrid, trials: Sequence[ScoredTrial], device: torch.device | str | None,
                     on_step: Callable[[TrainStep], bool | None] | None
                     ) -> tuple[Denoiser | None, dict, dict[int, Denoiser]]:
    from molrg import spec
    from molrg.neural.config import NeuralConfig
    from molrg.neural.training import train_ensemble

    options = spec.NeuralOptions.model_validate(grid.method_options.get("neural", {})).model_dump()
    config = NeuralConfig(**options)
    B = len(trials)
    every = max(1, config.steps // 200)

    def callback(p: object) -> bool:
        if on_step is None:
            return False
        loss = [float(v) for v in p.loss]  # type: ignore[attr-defined]
        return bool(on_step(TrainStep(p.step, p.total_steps, B, sum(loss) / len(loss))))  # type: ignore[attr-defined]

    result = train_ensemble(config, [t.X for t in trials], [network_seed(grid, t.cell, t.trial) for t in trials],
                            device=device, callback=callback, callback_every=every, snapshot_steps=grid.eval_at_steps)
    info = {"train_seconds": result.seconds / B, "steps_done": result.steps_done,
            "n_parameters": result.networks.n_parameters,
            "final_loss": result.loss_history[:, -1].tolist() if result.steps_done else None}
    if result.stopped:
        return None, info, {}
    snapshots = {step: _members_denoiser(nets, B) for step, nets in sorted(result.snapshots.items())}
    return _members_denoiser(result.networks, B), info, snapshots


def _empirical_denoiser(trials: Sequence[ScoredTrial], device: torch.device | str | None) -> Denoiser:
    """Every trial's training-set posterior mean (molrg.neural.references) as one masked program."""
    B = len(trials)
    n = int(trials[0].X.shape[1])
    counts = [int(t.X.shape[0]) for t in trials]
    T = torch.zeros(B, max(counts), n, dtype=torch.float64, device=device)
    valid = torch.zeros(B, max(counts), dtype=torch.bool, device=device)
    for b, t in enumerate(trials):
        T[b, : counts[b]] = t.X.to(device=device, dtype=torch.float64)
        valid[b, : counts[b]] = True
    half_sq = 0.5 * T.square().sum(-1)

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:
        xb = x.reshape(B, -1, n)
        M = xb.shape[1]
        iv = sigma.reshape(B, M, 1).square().clamp_min(torch.finfo(x.dtype).tiny).reciprocal()
        out = torch.empty_like(xb)
        step = max(1, _BLOCK // max(1, M * T.shape[1]))
        for b0 in range(0, B, step):
            sl = slice(b0, b0 + step)
            logits = (xb[sl] @ T[sl].transpose(1, 2) - half_sq[sl, None, :]) * iv[sl]
            logits = logits.masked_fill(~valid[sl, None, :], -torch.inf)
            out[sl] = torch.softmax(logits, dim=-1) @ T[sl]
        return out.reshape(x.shape)

    return denoiser


def _exact_denoiser(trials: Sequence[ScoredTrial]) -> Denoiser:
    """Every trial's true posterior mean (molrg.lowrank.analytic.exact_denoiser), trial by trial."""
    from molrg.lowrank.analytic import exact_denoiser

    B = len(trials)
    each = [exact_denoiser(t.bases.to(torch.float64)) for t in trials]

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:
        xb, sb = x.reshape(B, -1, x.shape[-1]), sigma.reshape(B, -1)
        return torch.stack([D(xb[b], sb[b]) for b, D in enumerate(each)]).reshape(x.shape)

    return denoiser


def _readout_points(grid: SweepGrid, trials: Sequence[ScoredTrial], K: int) -> Tensor:
    """(B, K, P, n): per trial, P = JACOBIAN_POINTS noisy points of each true component (cycled if fewer)."""
    out = []
    for t in trials:
        g = torch.Generator().manual_seed(derive_seed(int(grid.seed), "readout", *t.cell, t.trial))
        per = []
        for k in range(K):
            pts = t.X[t.labels == k].to(torch.float64).cpu()
            idx = torch.arange(JACOBIAN_POINTS) % pts.shape[0]
            per.append(pts[idx] + JACOBIAN_SIGMA * torch.randn(JACOBIAN_POINTS, pts.shape[1], generator=g,
                                                               dtype=torch.float64))
        out.append(torch.stack(per))
    return torch.stack(out)


def _readout_errors(denoiser: Denoiser, grid: SweepGrid, trials: Sequence[ScoredTrial],
                    device: torch.device | str | None) -> tuple[list[float], list[float]]:
    """Max and mean recovery errors of the subspaces read from every member's Jacobian (section 13)."""
    from molrg.analysis.jacobian import denoiser_jacobian
    from molrg.analysis.metrics import matched_errors

    B = len(trials)
    K = int(trials[0].bases.shape[0])
    pts = _readout_points(grid, trials, K).to(device)  # (B, K, P, n)
    n = pts.shape[-1]
    J = denoiser_jacobian(denoiser, pts.reshape(-1, n), JACOBIAN_SIGMA).reshape(B, K, -1, n)  # (B, K, P n, n)
    _, _, Vh = torch.linalg.svd(J.to(torch.float64), full_matrices=False)  # (B, K, n, n)
    emax, emean = [], []
    for b, t in enumerate(trials):
        d = int(t.bases.shape[-1])
        U_hat = Vh[b, :, :d].transpose(-1, -2)  # (K, n, d)
        errs = matched_errors(U_hat[None].cpu(), t.bases[None].to(torch.float64).cpu())[0]
        emax.append(float(errs.max()))
        emean.append(float(errs.mean()))
    return emax, emean


def run_scored(
    grid: SweepGrid,
    method: str,
    trials: Sequence[ScoredTrial],
    *,
    device: torch.device | str | None = None,
    on_step: Callable[[TrainStep], bool | None] | None = None,
) -> list[ScoredOutcome] | None:
    """Scores of ``method`` on every trial (all of one n and K); None when ``on_step`` stopped training."""
    if not trials:
        return []
    t0 = time.perf_counter()
    info: dict = {}
    snapshots: dict[int, Denoiser] = {}
    if method == "neural":
        denoiser, info, snapshots = _neural_denoiser(grid, trials, device, on_step)
        if denoiser is None:
            return None
    elif method == "empirical":
        denoiser = _empirical_denoiser(trials, device)
    elif method == "exact":
        denoiser = _exact_denoiser(trials)
    else:
        raise ValueError(f"method={method!r} is not sample-scored (neural, empirical, exact)")
    emax, emean = _readout_errors(denoiser, grid, trials, device)
    final = _sample_scores(denoiser, grid, trials, device)
    by_step = {step: _sample_scores(D, grid, trials, device) for step, D in snapshots.items()}
    out = []
    seconds = (time.perf_counter() - t0) / len(trials)
    for b in range(len(trials)):
        row = {k: (v[b] if isinstance(v, list) else v) for k, v in info.items()}
        mem, sup, gen, finite = final[b]
        row["finite_samples"] = int(finite)
        out.append(ScoredOutcome(
            error=emax[b], mean_error=emean[b], memorised_fraction=mem, on_support_fraction=sup,
            generalisation_score=gen, seconds=seconds, info=row,
            scores_by_step={str(step): dict(zip(SCORE_NAMES, scores[b][:3], strict=True))
                            for step, scores in by_step.items()} or None,
        ))
    return out


SCORE_NAMES = ("memorised_fraction", "on_support_fraction", "generalisation_score")


def _sample_scores(denoiser: Denoiser, grid: SweepGrid, trials: Sequence[ScoredTrial],
                   device: torch.device | str | None) -> list[tuple[float, float, float, bool]]:
    """Per trial (memorised, on support, generalisation, finite) of ``eval_samples`` Heun samples (section 13)."""
    from molrg.analysis.scores import sample_scores
    from molrg.sampling.samplers import initial_noise, sample_heun
    from molrg.sampling.schedules import get_sigmas_karras

    B, M, n = len(trials), int(grid.eval_samples), int(trials[0].X.shape[1])
    sigmas = get_sigmas_karras(int(grid.eval_steps), 0.002, 80.0, 7.0, device=device)
    x0 = torch.cat([initial_noise(M, n, eval_seed(grid, t.cell, t.trial), sigma_max=float(sigmas[0]), device=device)
                    for t in trials])
    with torch.no_grad():
        samples = sample_heun(denoiser, x0, sigmas).reshape(B, M, n).to(torch.float64).cpu()
    out = []
    for b, t in enumerate(trials):
        x = samples[b]
        if not bool(torch.isfinite(x).all()):  # nothing on support, nothing generalised
            out.append((0.0, 0.0, 0.0, False))
            continue
        s = sample_scores(x, t.X.cpu() if t.X.shape[0] >= 2 else None, t.bases.to(torch.float64).cpu())
        on_support = s["true"]["on_support_fraction"]
        mem = s.get("memorisation", {"memorised_fraction": 0.0, "generalisation_score": on_support})
        out.append((mem["memorised_fraction"], on_support, mem["generalisation_score"], True))
    return out
