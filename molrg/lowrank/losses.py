"""Diffusion training losses of the low-rank denoiser (spec sections 2-4).

* Exact expected loss (closed form over eps by the key identity of section 4, and over t by a
  quadrature of p(t) weighted by lambda_t) for the K = 1 linear model and the hard-max surrogate.
* Monte-Carlo denoising loss of the soft-max model (section 3) through molrg.lowrank.analytic.posterior_mean.

The schedules (s_t, gamma_t, p(t)) and weights lambda_t are those of :mod:`molrg.sampling.schedules`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from molrg.sampling.schedules import SCHEDULES, WEIGHTINGS, get_schedule, loss_weight

__all__ = [
    "SCHEDULES",
    "WEIGHTINGS",
    "LossCoefficients",
    "MinibatchDraws",
    "hardmax_loss_and_grad",
    "key_identity_loss",
    "loss_coefficients",
    "row_weights",
    "softmax_mc_loss",
    "time_quadrature",
]


@dataclass(frozen=True)
class LossCoefficients:
    """E_t lambda_t-weighted scalars of the key identity: l = A||x||^2 - kappa||U^T x||^2 + D d (section 4).

    Floats, or Tensors of shape (B,) (one value per trial, e.g. with a per-trial sigma_data).
    """

    A: float | Tensor  # E_t lambda_t
    kappa: float | Tensor  # E_t lambda_t (2 alpha_t - alpha_t^2)
    D: float | Tensor  # E_t lambda_t c_t^2 gamma_t^2


def time_quadrature(
    schedule: str = "edm", n_nodes: int = 64, weighting: str = "unit", sigma_data: float | Tensor = 0.5
) -> tuple[Tensor, Tensor, Tensor]:
    """Nodes (s_t, gamma_t) and weights w_j ~ p(t_j) lambda_{t_j} of E_{t~p(t)} lambda_t f(t) (section 2).

    p(t) and (s_t, gamma_t) come from :func:`molrg.sampling.schedules.get_schedule` (vp: t ~ U[t_min, 1];
    ve: ln sigma ~ U[ln 0.002, ln 80]; edm: ln sigma ~ N(-1.2, 1.2^2)); lambda_t from
    :func:`molrg.sampling.schedules.loss_weight`. A Tensor sigma_data of shape (B,) gives weights (B, n_nodes).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {WEIGHTINGS}, got {weighting!r}")
    sched = get_schedule(schedule)
    t, w = sched.quadrature(n_nodes)
    s, gamma = sched.s(t), sched.gamma(t)
    sd = sigma_data.to(torch.float64)[..., None] if isinstance(sigma_data, Tensor) else float(sigma_data)
    return s, gamma, w * loss_weight(weighting, s, gamma, sd)


def loss_coefficients(
    schedule: str = "edm", n_nodes: int = 64, weighting: str = "unit", sigma_data: float | Tensor = 0.5
) -> LossCoefficients:
    """Integrate the key-identity scalars over p(t) lambda_t (section 4): alpha_t = s_t^2/(s_t^2+gamma_t^2)."""
    s, gamma, w = time_quadrature(schedule, n_nodes, weighting, sigma_data)
    c = s / (s**2 + gamma**2)
    alpha = c * s
    A, kappa, D = w.sum(-1), (w * (2 * alpha - alpha**2)).sum(-1), (w * c**2 * gamma**2).sum(-1)
    if A.ndim == 0:
        return LossCoefficients(A=float(A), kappa=float(kappa), D=float(D))
    return LossCoefficients(A=A, kappa=kappa, D=D)


def key_identity_loss(U: Tensor, x: Tensor, s_t: float, gamma_t: float) -> Tensor:
    """E_eps ||c_t P (s_t x + gamma_t eps) - x||^2 in closed form (section 4); U (..., n, d), x (..., M, n) -> (..., M)."""
    c = s_t / (s_t**2 + gamma_t**2)
    alpha = c * s_t
    d = U.shape[-1]
    proj = ((x @ U) ** 2).sum(-1)
    return (x**2).sum(-1) - (2 * alpha - alpha**2) * proj + c**2 * gamma_t**2 * d


def row_weights(X: Tensor, n_valid: Tensor | None) -> Tensor:
    """Per-row weights 1/N_b for rows i < n_valid[b], 0 for zero padding; X (B, N, n) -> (B, N)."""
    B, N = X.shape[0], X.shape[-2]
    if n_valid is None:
        return X.new_full((B, N), 1.0 / N)
    nv = n_valid.to(device=X.device).reshape(B, 1)
    valid = torch.arange(N, device=X.device)[None, :] < nv
    return valid.to(X.dtype) / nv.to(X.dtype)


def _per_trial(c: float | Tensor, like: Tensor, ndim: int) -> float | Tensor:
    """A coefficient (float or (B,)) shaped to broadcast against a (B, ...) tensor of ``ndim`` dims."""
    if isinstance(c, Tensor):
        return c.to(like).reshape(-1, *([1] * (ndim - 1)))
    return c


def hardmax_loss_and_grad(
    U: Tensor, X: Tensor, dims: Sequence[int], coef: LossCoefficients, weights: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact expected hard-max (K >= 2) / linear (K = 1) diffusion loss and its Euclidean gradient (section 4).

    l(U) = sum_i w_i [A ||x_i||^2 - kappa ||U_{k(i)}^T x_i||^2 + D d_{k(i)}], k(i) = argmax_k ||U_k^T x_i||
    (the indicator is held fixed when differentiating, as in the paper's surrogate). All restarts share
    X through one (B, N, n) x (B, n, R K dmax) product (no copy of X per restart).

    Parameters
    ----------
    U : Tensor of shape (B, *R, K, n, dmax), padded bases (R: any restart dims, possibly none)
    X : Tensor of shape (B, N, n)
    weights : Tensor of shape (B, N), per-row weights (1/N, 0 for padding rows)

    Returns
    -------
    loss (B, *R), egrad (B, *R, K, n, dmax), assignment (B, *R, N) int64
    """
    B, N, n = X.shape
    K, dmax = U.shape[-3], U.shape[-1]
    U = U.expand(B, *U.shape[1:])
    mid = tuple(U.shape[1:-3])
    M = math.prod(mid) * K  # restarts x components
    Ut = U.reshape(B, M, n, dmax).permute(0, 2, 1, 3).reshape(B, n, M * dmax)
    P = torch.bmm(X, Ut).view(B, N, M, dmax)
    e0 = (weights * X.square().sum(-1)).sum(-1, keepdim=True)  # (B, 1)
    if K == 1:  # the linear model: every row belongs to the one component
        sel = (weights[:, :, None] * P.square().sum(-1)).sum(1)  # (B, R')
        loss = _per_trial(coef.A, X, 2) * e0 - _per_trial(coef.kappa, X, 2) * sel + _per_trial(coef.D, X, 2) * dims[0]
        G = torch.bmm(X.transpose(1, 2), (weights[:, :, None, None] * P).view(B, N, M * dmax))
        egrad = (-2.0 * _per_trial(coef.kappa, X, len(mid) + 4)) * G.view(B, n, M, dmax).permute(0, 2, 1, 3).reshape(
            B, *mid, K, n, dmax)
        return loss.reshape(B, *mid), egrad, torch.zeros(B, *mid, N, dtype=torch.long, device=X.device)
    energies = P.square().sum(-1).view(B, N, -1, K)  # (B, N, R', K)
    assign = energies.argmax(-1)  # (B, N, R')
    z = torch.nn.functional.one_hot(assign, K).to(X.dtype) * weights[:, :, None, None]  # (B, N, R', K)
    d = torch.as_tensor(list(dims), dtype=X.dtype, device=X.device)
    sel = (z * energies).sum((1, 3))  # (B, R')
    dsum = (z.sum(1) * d).sum(-1)  # (B, R')
    loss = _per_trial(coef.A, X, 2) * e0 - _per_trial(coef.kappa, X, 2) * sel + _per_trial(coef.D, X, 2) * dsum
    ZP = (z.view(B, N, M, 1) * P).view(B, N, M * dmax)
    G = torch.bmm(X.transpose(1, 2), ZP).view(B, n, M, dmax).permute(0, 2, 1, 3)
    egrad = (-2.0 * _per_trial(coef.kappa, X, len(mid) + 4)) * G.reshape(B, *mid, K, n, dmax)
    return loss.reshape(B, *mid), egrad, assign.permute(0, 2, 1).reshape(B, *mid, N)


def softmax_mc_loss(
    U: Tensor,
    x0: Tensor,
    s_t: Tensor,
    gamma_t: Tensor,
    eps: Tensor,
    dims: Sequence[int],
    log_pi: Tensor,
    lam: Tensor | float = 1.0,
) -> Tensor:
    """Monte-Carlo denoising loss of the soft-max model at x_t = s_t x0 + gamma_t eps (sections 2-3).

    Parameters
    ----------
    U : Tensor of shape (..., K, n, dmax), learnable padded bases
    x0, eps : Tensors of shape (..., M, n)
    s_t, gamma_t : Tensors broadcastable to (..., M), from the chosen schedule at the drawn t
    log_pi : Tensor of shape (..., K)
    lam : lambda_t per draw (:func:`molrg.sampling.schedules.loss_weight`), broadcastable to (..., M)

    Returns
    -------
    Tensor of shape (...): mean over the M draws of lambda_t ||x_theta(x_t, t) - x0||^2
    """
    from molrg.lowrank.analytic import posterior_mean

    x_t = s_t.unsqueeze(-1) * x0 + gamma_t.unsqueeze(-1) * eps
    den = posterior_mean(x_t, U, list(dims), log_pi, s_t, gamma_t)
    err = ((den - x0) ** 2).sum(-1)
    return (lam * err).mean(-1)


class MinibatchDraws:
    """Draws of the Monte-Carlo loss (section 2): x0 from each trial's valid rows, t ~ p(t), lambda_t, eps.

    ``draws(gen, R, M)`` -> x0 (B, R, M, n), s_t, gamma_t, lambda_t (B, R, M) and eps (B, R, M, n); the
    uniforms, t and eps have no batch dimension (shared by the trials, so a trial's draws do not
    depend on the batch), the rows are picked per trial among its ``valid`` ones.
    """

    def __init__(self, X: Tensor, valid: Tensor, schedule: str, weighting: str, sigma_data: float | Tensor) -> None:
        self.X, self.nv, self.weighting = X, valid.sum(-1).to(X.dtype), weighting
        self.sched = get_schedule(schedule)
        self.sigma_data = sigma_data[:, None, None] if isinstance(sigma_data, Tensor) else sigma_data

    def __call__(self, gen: torch.Generator, R: int, M: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        X = self.X
        B, N, n = X.shape
        u = torch.rand((R, M), generator=gen, dtype=torch.float64).to(X.device)
        idx = (u[None] * self.nv[:, None, None]).long().clamp_max(N - 1).reshape(B, R * M)
        x0 = torch.gather(X, 1, idx[..., None].expand(B, R * M, n)).view(B, R, M, n)
        t = self.sched.sample_t(R * M, gen).reshape(R, M).to(X.device)
        s_t, g_t = self.sched.s(t).to(X.dtype), self.sched.gamma(t).to(X.dtype)
        lam = loss_weight(self.weighting, s_t, g_t, self.sigma_data)
        e = torch.randn((R, M, n), generator=gen, dtype=torch.float64).to(X)
        return x0, s_t.expand(B, R, M), g_t.expand(B, R, M), lam.expand(B, R, M), e.expand(B, R, M, n)
