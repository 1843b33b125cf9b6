"""Train B EDM denoisers as one tensor program (spec section 12).

Per step: each member's batch indices, noise levels and noise come from that member's own
``torch.Generator`` (drawn outside the vmapped function, in chunks whose size depends only on
``batch_size`` and ``n``), so member b's draws are the same whatever the other members are. The
members' losses are computed by one vmapped call and summed; one Adam over the stacked parameters
is then B independent Adams (Adam is element-wise; no global gradient clipping, no weight decay
coupling). A member trained in an ensemble equals the same member trained alone, to round-off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.func import vmap

from molrg.neural.config import NeuralConfig
from molrg.neural.ensemble import TRAIN_STREAM, StackedNetworks, stream_seed
from molrg.neural.networks import build_backbone
from molrg.neural.precond import edm_loss

__all__ = ["EnsembleResult", "TrainCallback", "TrainProgress", "data_sigma", "learning_rate", "train_ensemble"]

# Per-member draws are made for this many float elements at a time (idx, sigma, noise for several
# steps): the chunk length in steps depends on batch_size * n only, never on the ensemble.
_DRAW_ELEMENTS = 1 << 20
_MAX_DRAW_STEPS = 64


@dataclass(frozen=True)
class TrainProgress:
    """What a training callback sees after each step; the callback returns True to stop."""

    step: int  # steps done, 1 .. total_steps
    total_steps: int
    loss: list[float]  # per member, this step's loss
    elapsed_s: float


TrainCallback = Callable[[TrainProgress], bool | None]


@dataclass
class EnsembleResult:
    """``networks``: the denoising weights (the EMA when ``config.ema > 0``); ``loss_history``:
    (B, steps_done) float64 CPU, per member and step; ``stopped``: the callback ended training;
    ``snapshots``: the denoising weights after each requested step (``snapshot_steps``)."""

    networks: StackedNetworks
    loss_history: Tensor
    steps_done: int
    stopped: bool
    seconds: float
    snapshots: dict[int, StackedNetworks] = field(default_factory=dict)


def data_sigma(X: Tensor) -> float:
    """EDM's ``sigma_data`` from data: the RMS per coordinate ``sqrt(mean(X^2))`` (spec section 12)."""
    value = float(X.double().square().mean().sqrt())
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"sigma_data from the data is {value}: the data are all zero or not finite")
    return value


def learning_rate(config: NeuralConfig, step: int) -> float:
    """Learning rate of (0-based) ``step``: constant, or cosine from ``lr`` down to 0 at ``steps``."""
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))


def _draw_steps(config: NeuralConfig, n: int) -> int:
    return max(1, min(_MAX_DRAW_STEPS, _DRAW_ELEMENTS // (config.batch_size * max(n, 1))))


def _pad(datasets: Sequence[Tensor], device: torch.device | str | None, dtype: torch.dtype) -> tuple[Tensor, list[int]]:
    n = int(datasets[0].shape[1])
    counts = [int(X.shape[0]) for X in datasets]
    X_pad = torch.zeros(len(datasets), max(counts), n, dtype=dtype, device=device)
    for b, X in enumerate(datasets):
        X_pad[b, : counts[b]] = X.to(device=device, dtype=dtype)
    return X_pad, counts


def _check_datasets(datasets: Sequence[Tensor]) -> None:
    if len(datasets) < 1:
        raise ValueError("datasets: need at least one member")
    n = None
    for b, X in enumerate(datasets):
        if X.ndim != 2 or X.shape[0] < 1:
            raise ValueError(f"datasets[{b}]: expected shape (N >= 1, n), got {tuple(X.shape)}")
        if n is not None and X.shape[1] != n:
            raise ValueError(f"datasets[{b}]: n={X.shape[1]} differs from n={n}: members share the network shape")
        if not bool(torch.isfinite(X).all()):
            raise ValueError(f"datasets[{b}]: contains NaN or inf")
        n = X.shape[1]


@torch.no_grad()
def _clip_per_member(stacked: list[Tensor], max_norm: float) -> None:
    """Scale member b's gradients by ``min(1, max_norm / ||g_b||)``, ``||g_b||`` over its own slices."""
    grads = [p.grad for p in stacked if p.grad is not None]
    sq = torch.stack([g.reshape(g.shape[0], -1).square().sum(1) for g in grads]).sum(0)  # (B,)
    factor = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor.reshape(-1, *([1] * (g.ndim - 1))).to(g.dtype))


def train_ensemble(
    config: NeuralConfig,
    datasets: Sequence[Tensor],
    seeds: Sequence[int],
    *,
    sigma_data: Sequence[float] | float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    callback: TrainCallback | None = None,
    callback_every: int = 1,
    snapshot_steps: Sequence[int] = (),
) -> EnsembleResult:
    """Train one member per dataset (each (N_b, n), N_b may differ) with seeds ``seeds[b]``.

    ``sigma_data``: per member, one for all, or None (``config.sigma_data``, else from each
    member's data). ``callback(TrainProgress)`` runs every ``callback_every`` steps and after the
    last; returning True stops training after that step (the weights so far are returned).
    ``snapshot_steps``: also keep a copy of the denoising weights after each of these steps (memorisation
    against training time, spec section 14).
    """
    _check_datasets(datasets)
    B = len(datasets)
    if len(seeds) != B:
        raise ValueError(f"seeds: expected {B} (one per dataset), got {len(seeds)}")
    if callback_every < 1:
        raise ValueError(f"callback_every={callback_every} must be >= 1")
    n = int(datasets[0].shape[1])
    build_backbone(config, n)  # validates the architecture for this n (unet layout) before any work
    if sigma_data is None:
        sigma_data = config.sigma_data
    if sigma_data is None:
        sds = [data_sigma(X) for X in datasets]
    elif isinstance(sigma_data, int | float):
        sds = [float(sigma_data)] * B
    else:
        sds = [float(s) for s in sigma_data]
    if len(sds) != B or not all(math.isfinite(s) and s > 0 for s in sds):
        raise ValueError(f"sigma_data: expected {B} positive values, got {sds}")

    nets = StackedNetworks.initialise(config, n, seeds, sds, device=device, dtype=dtype)
    dev = nets.device
    params = {k: v.requires_grad_(True) for k, v in nets.params.items()}
    ema = {k: v.detach().clone() for k, v in params.items()} if config.ema > 0 else None
    opt = torch.optim.Adam(list(params.values()), lr=config.lr, fused=True)
    X_pad, counts = _pad(datasets, dev, dtype)
    sd_t = torch.tensor(sds, dtype=dtype, device=dev)
    gens = [torch.Generator(device=dev).manual_seed(stream_seed(int(s), TRAIN_STREAM)) for s in seeds]
    rows = torch.arange(B, device=dev)[:, None]
    bs = config.batch_size

    def member_loss(p: dict[str, Tensor], x0: Tensor, sigma: Tensor, noise: Tensor, sd: Tensor) -> Tensor:
        return edm_loss(lambda xi, c: nets.backbone(p, xi, c), x0, sigma, noise, sd)

    batched_loss = vmap(member_loss)
    history = torch.zeros(B, config.steps, dtype=torch.float64, device=dev)
    chunk = _draw_steps(config, n)
    idx = torch.empty((B, chunk, bs), dtype=torch.int64, device=dev)
    sig = torch.empty((B, chunk, bs), dtype=dtype, device=dev)
    eps = torch.empty((B, chunk, bs, n), dtype=dtype, device=dev)
    snap_at = {int(s) for s in snapshot_steps}
    snapshots: dict[int, StackedNetworks] = {}
    t0 = time.perf_counter()
    step, stopped = 0, False
    while step < config.steps and not stopped:
        # always a full chunk, so a member's draws do not depend on config.steps either; drawn into
        # preallocated buffers (no stacking copy), in the order idx, sigma, noise per member
        for b, g in enumerate(gens):
            torch.randint(counts[b], (chunk, bs), generator=g, out=idx[b])
            torch.randn((chunk, bs), generator=g, out=sig[b])
            torch.randn((chunk, bs, n), generator=g, out=eps[b])
        sig.mul_(config.p_std).add_(config.p_mean).exp_()  # = sample_training_sigmas, in place
        for j in range(min(chunk, config.steps - step)):
            lr = learning_rate(config, step)
            for group in opt.param_groups:
                group["lr"] = lr
            x0 = X_pad[rows, idx[:, j]]  # (B, bs, n)
            losses = batched_loss(params, x0, sig[:, j], eps[:, j], sd_t)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            if config.grad_clip > 0:
                _clip_per_member(list(params.values()), config.grad_clip)
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for k, e in ema.items():
                        e.lerp_(params[k], 1.0 - config.ema)
            history[:, step] = losses.detach()
            step += 1
            if step in snap_at:
                weights = ema if ema is not None else params
                snapshots[step] = StackedNetworks(config, n, {k: v.detach().clone() for k, v in weights.items()},
                                                  torch.tensor(sds))
            if callback is not None and (step % callback_every == 0 or step == config.steps):
                progress = TrainProgress(step, config.steps, history[:, step - 1].tolist(), time.perf_counter() - t0)
                if callback(progress):
                    stopped = True
                    break
    final = ema if ema is not None else {k: v.detach() for k, v in params.items()}
    out = StackedNetworks(config, n, {k: v.detach().clone() for k, v in final.items()}, torch.tensor(sds))
    return EnsembleResult(out, history[:, :step].cpu(), step, stopped, time.perf_counter() - t0, snapshots)
