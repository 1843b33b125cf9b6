"""Diffusion training losses of the low-rank denoiser (spec sections 2-4).

* Exact expected loss (closed form over eps by the key identity of section 4, and over t by a
  quadrature of p(t) weighted by lambda_t) for the K = 1 linear model and the hard-max surrogate.
* Monte-Carlo denoising loss of the soft-max model (section 3) through molrg.lowrank.analytic.posterior_mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SCHEDULES = ("vp", "ve", "edm")
WEIGHTINGS = ("unit", "edm")
VP_BETA_MIN, VP_BETA_MAX, VP_T_MIN = 0.1, 20.0, 1e-3
VE_SIGMA_MIN, VE_SIGMA_MAX = 0.002, 80.0
EDM_P_MEAN, EDM_P_STD = -1.2, 1.2


@dataclass(frozen=True)
class LossCoefficients:
    """E_t lambda_t-weighted scalars of the key identity: l = A||x||^2 - kappa||U^T x||^2 + D d (section 4)."""

    A: float  # E_t lambda_t
    kappa: float  # E_t lambda_t (2 alpha_t - alpha_t^2)
    D: float  # E_t lambda_t c_t^2 gamma_t^2


def _vp_s(t: np.ndarray) -> np.ndarray:
    """VP signal scale s_t = exp(-1/2 int_0^t beta) (spec section 2)."""
    return np.exp(-0.5 * (VP_BETA_MIN * t + 0.5 * (VP_BETA_MAX - VP_BETA_MIN) * t**2))


def time_quadrature(
    schedule: str = "edm", n_nodes: int = 64, weighting: str = "unit", sigma_data: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes (s_t, gamma_t) and weights w_j ~ p(t_j) lambda_{t_j} of E_{t~p(t)} lambda_t f(t) (section 2).

    vp: t ~ U[t_min, 1] (Gauss-Legendre); ve: log sigma ~ U[log 0.002, log 80] (Gauss-Legendre);
    edm: ln sigma ~ N(-1.2, 1.2^2) (Gauss-Hermite). weighting: lambda = 1 ("unit") or the EDM
    weight (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 with sigma = gamma_t / s_t ("edm").
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {WEIGHTINGS}, got {weighting!r}")
    if schedule == "edm":
        z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
        w = w / math.sqrt(2 * math.pi)
        sigma = np.exp(EDM_P_MEAN + EDM_P_STD * z)
        s, gamma = np.ones_like(sigma), sigma
    else:
        u, w = np.polynomial.legendre.leggauss(n_nodes)
        w = w / 2.0
        if schedule == "vp":
            t = VP_T_MIN + (1 - VP_T_MIN) * (u + 1) / 2
            s = _vp_s(t)
            gamma = np.sqrt(1 - s**2)
        else:
            lo, hi = math.log(VE_SIGMA_MIN), math.log(VE_SIGMA_MAX)
            sigma = np.exp(lo + (hi - lo) * (u + 1) / 2)
            s, gamma = np.ones_like(sigma), sigma
    if weighting == "edm":
        sig = gamma / s
        w = w * (sig**2 + sigma_data**2) / (sig * sigma_data) ** 2
    return s, gamma, w


def loss_coefficients(
    schedule: str = "edm", n_nodes: int = 64, weighting: str = "unit", sigma_data: float = 0.5
) -> LossCoefficients:
    """Integrate the key-identity scalars over p(t) lambda_t (section 4): alpha_t = s_t^2/(s_t^2+gamma_t^2)."""
    s, gamma, w = time_quadrature(schedule, n_nodes, weighting, sigma_data)
    c = s / (s**2 + gamma**2)
    alpha = c * s
    return LossCoefficients(
        A=float(np.sum(w)),
        kappa=float(np.sum(w * (2 * alpha - alpha**2))),
        D=float(np.sum(w * c**2 * gamma**2)),
    )


def key_identity_loss(U: Tensor, x: Tensor, s_t: float, gamma_t: float) -> Tensor:
    """E_eps ||c_t P (s_t x + gamma_t eps) - x||^2 in closed form (section 4); U (..., n, d), x (..., M, n) -> (..., M)."""
    c = s_t / (s_t**2 + gamma_t**2)
    alpha = c * s_t
    d = U.shape[-1]
    proj = ((x @ U) ** 2).sum(-1)
    return (x**2).sum(-1) - (2 * alpha - alpha**2) * proj + c**2 * gamma_t**2 * d


def component_energies(U: Tensor, X: Tensor) -> Tensor:
    """||U_k^T x_i||^2 for U (..., K, n, dmax), X (..., N, n) -> (..., N, K)."""
    P = torch.einsum("...in,...knd->...ikd", X, U)
    return (P**2).sum(-1)


def row_weights(X: Tensor, n_valid: Tensor | None) -> Tensor:
    """Per-row weights 1/N_b for rows i < n_valid[b], 0 for zero padding; X (B, N, n) -> (B, N)."""
    B, N = X.shape[0], X.shape[-2]
    if n_valid is None:
        return X.new_full((B, N), 1.0 / N)
    nv = n_valid.to(device=X.device).reshape(B, 1)
    valid = torch.arange(N, device=X.device)[None, :] < nv
    return valid.to(X.dtype) / nv.to(X.dtype)


def hardmax_loss_and_grad(
    U: Tensor, X: Tensor, dims: Sequence[int], coef: LossCoefficients, weights: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact expected hard-max (K >= 2) / linear (K = 1) diffusion loss and its Euclidean gradient (section 4).

    l(U) = sum_i w_i [A ||x_i||^2 - kappa ||U_{k(i)}^T x_i||^2 + D d_{k(i)}], k(i) = argmax_k ||U_k^T x_i||
    (the indicator is held fixed when differentiating, as in the paper's surrogate).

    Parameters
    ----------
    U : Tensor of shape (..., K, n, dmax), padded bases
    X : Tensor of shape (..., N, n)
    weights : Tensor of shape (..., N), per-row weights (1/N, 0 for padding rows)

    Returns
    -------
    loss (...), egrad (..., K, n, dmax), assignment (..., N) int64
    """
    lead = torch.broadcast_shapes(U.shape[:-3], X.shape[:-2])
    K, n, dmax = U.shape[-3:]
    N = X.shape[-2]
    Xf = X.expand(*lead, N, n).reshape(-1, 1, N, n)
    Uf = U.expand(*lead, K, n, dmax).reshape(-1, K, n, dmax)
    P = torch.matmul(Xf, Uf).reshape(*lead, K, N, dmax)  # (..., K, N, dmax)
    energies = (P**2).sum(-1)  # (..., K, N)
    assign = energies.argmax(-2)  # (..., N)
    onehot = torch.nn.functional.one_hot(assign, U.shape[-3]).to(X.dtype).transpose(-1, -2)  # (..., K, N)
    z = onehot * weights.unsqueeze(-2)
    d = torch.as_tensor(list(dims), dtype=X.dtype, device=X.device)
    sel = (z * energies).sum((-1, -2))
    loss = coef.A * (weights * (X**2).sum(-1)).sum(-1) - coef.kappa * sel + coef.D * (z.sum(-1) * d).sum(-1)
    ZP = (z.unsqueeze(-1) * P).reshape(-1, K, N, dmax)
    egrad = -2.0 * coef.kappa * torch.matmul(Xf.transpose(-1, -2), ZP).reshape(*lead, K, n, dmax)
    return loss, egrad, assign


def hardmax_loss(U: Tensor, X: Tensor, dims: Sequence[int], coef: LossCoefficients, weights: Tensor) -> Tensor:
    """Exact expected hard-max / linear loss only (see :func:`hardmax_loss_and_grad`)."""
    return hardmax_loss_and_grad(U, X, dims, coef, weights)[0]


def edm_weight(sigma: Tensor, sigma_data: Tensor | float) -> Tensor:
    """EDM loss weight lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def softmax_mc_loss(
    U: Tensor,
    x0: Tensor,
    sigma: Tensor,
    eps: Tensor,
    dims: Sequence[int],
    log_pi: Tensor,
    sigma_data: Tensor | float = 0.5,
    weighting: str = "edm",
) -> Tensor:
    """Monte-Carlo denoising loss of the soft-max model, VE convention x_t = x0 + sigma eps (sections 2-3).

    Parameters
    ----------
    U : Tensor of shape (..., K, n, dmax), learnable padded bases
    x0, eps : Tensors of shape (..., M, n)
    sigma : Tensor of shape (..., M)
    log_pi : Tensor of shape (..., K)
    sigma_data : float, or Tensor broadcastable against sigma (e.g. a per-trial data scale)

    Returns
    -------
    Tensor of shape (...): mean over the M draws of lambda(sigma) ||x_theta(x_t) - x0||^2
    """
    from molrg.lowrank.analytic import posterior_mean

    x_t = x0 + sigma.unsqueeze(-1) * eps
    den = posterior_mean(x_t, U, list(dims), log_pi, torch.ones_like(sigma), sigma)
    err = ((den - x0) ** 2).sum(-1)
    lam = edm_weight(sigma, sigma_data) if weighting == "edm" else torch.ones_like(sigma)
    return (lam * err).mean(-1)
