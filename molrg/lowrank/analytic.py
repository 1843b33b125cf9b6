"""Exact MoLRG posterior mean, responsibilities and score (spec section 3).

    E[x0 | x_t] = c_t sum_k w_k(x_t) U_k U_k^T x_t,           c_t   = s_t / (s_t^2 + gamma_t^2)
    w_k(x_t)    = softmax_k(log pi_k - (d_k/2) log((s_t^2 + gamma_t^2)/gamma_t^2) + phi_t ||U_k^T x_t||^2)
    phi_t       = s_t^2 / (2 gamma_t^2 (s_t^2 + gamma_t^2))

The functions are plain differentiable torch code (no in-place ops on inputs, no ``no_grad``): the
soft-max model of the paper is :func:`posterior_mean` with learnable ``U``, in float32 or float64.
Bases are padded ``(..., K, n, dmax)`` (docs/CONTRACTS.md); zero columns drop out of every term.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from molrg.bases import pad_bases

__all__ = [
    "Denoiser",
    "exact_denoiser",
    "log_responsibilities",
    "posterior_mean",
    "responsibilities",
    "score",
]

ScalarLike = Tensor | float
DimsLike = Sequence[int] | Tensor | None
Denoiser = Callable[[Tensor, Tensor | float], Tensor]

# gamma_t is floored here so that gamma_t -> 0 gives the (finite) limit, the projection onto the
# most likely subspace, rather than inf/nan; the floor keeps phi_t * ||U^T x||^2 inside float32 range.
_GAMMA_FLOOR = 1e-12


def _coef(value: ScalarLike, like: Tensor) -> Tensor:
    """Scalar or (...,M) coefficient as a tensor broadcastable to (..., M, 1)."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t[..., None] if t.ndim > 0 else t


def _dims_tensor(dims: DimsLike, U: Tensor) -> Tensor:
    K, dmax = U.shape[-3], U.shape[-1]
    if dims is None:
        return torch.full((K,), float(dmax), dtype=U.dtype, device=U.device)
    d = torch.as_tensor(dims, dtype=U.dtype, device=U.device)
    if d.shape[-1] != K:
        raise ValueError(f"dims: expected {K} entries (one per component of U), got {tuple(d.shape)}")
    return d


def _log_pi(log_pi: Tensor | None, U: Tensor) -> Tensor:
    K = U.shape[-3]
    if log_pi is None:
        return torch.full((K,), -math.log(K), dtype=U.dtype, device=U.device)
    lp = torch.as_tensor(log_pi, dtype=U.dtype, device=U.device)
    if lp.shape[-1] != K:
        raise ValueError(f"log_pi: expected {K} entries (one per component of U), got {tuple(lp.shape)}")
    return lp


def _check(x_t: Tensor, U: Tensor) -> None:
    if x_t.ndim < 2 or U.ndim < 3:
        raise ValueError(
            f"expected x_t (..., M, n) and U (..., K, n, dmax), got {tuple(x_t.shape)} and {tuple(U.shape)}"
        )
    if x_t.shape[-1] != U.shape[-2]:
        raise ValueError(f"x_t has n={x_t.shape[-1]} but U has n={U.shape[-2]}")


def _coefficients(x_t: Tensor, U: Tensor) -> Tensor:
    """``z_k = U_k^T x_t`` of shape (..., K, M, dmax)."""
    return x_t[..., None, :, :] @ U.to(x_t.dtype)


def _logits(
    z: Tensor, dims: DimsLike, log_pi: Tensor | None, s_t: ScalarLike, gamma_t: ScalarLike, U: Tensor
) -> Tensor:
    """Unnormalised log-weights of shape (..., M, K) from the coefficients z (..., K, M, dmax)."""
    like = z
    s = _coef(s_t, like)
    g = _coef(gamma_t, like).clamp_min(_GAMMA_FLOOR)
    snr = (s / g) ** 2  # s_t^2 / gamma_t^2
    phi = snr / (2.0 * (s * s + g * g))
    energy = z.square().sum(-1).transpose(-1, -2)  # (..., M, K) = ||U_k^T x_t||^2
    d = _dims_tensor(dims, U).to(like.dtype)
    lp = _log_pi(log_pi, U).to(like.dtype)
    return lp[..., None, :] - 0.5 * d[..., None, :] * torch.log1p(snr) + phi * energy


def log_responsibilities(
    x_t: Tensor,
    U: Tensor,
    dims: DimsLike = None,
    log_pi: Tensor | None = None,
    s_t: ScalarLike = 1.0,
    gamma_t: ScalarLike = 1.0,
) -> Tensor:
    """``log w_k(x_t)`` (spec section 3, logsumexp-normalised): shape (..., M, K)."""
    _check(x_t, U)
    logits = _logits(_coefficients(x_t, U), dims, log_pi, s_t, gamma_t, U)
    return torch.log_softmax(logits, dim=-1)


def responsibilities(
    x_t: Tensor,
    U: Tensor,
    dims: DimsLike = None,
    log_pi: Tensor | None = None,
    s_t: ScalarLike = 1.0,
    gamma_t: ScalarLike = 1.0,
) -> Tensor:
    """Posterior component probabilities ``w_k(x_t)`` (spec section 3): shape (..., M, K)."""
    return log_responsibilities(x_t, U, dims, log_pi, s_t, gamma_t).exp()


def posterior_mean(
    x_t: Tensor,
    U: Tensor,
    dims: DimsLike = None,
    log_pi: Tensor | None = None,
    s_t: ScalarLike = 1.0,
    gamma_t: ScalarLike = 1.0,
) -> Tensor:
    """Exact ``E[x0 | x_t]`` of the MoLRG (spec section 3).

    Parameters
    ----------
    x_t : Tensor of shape (..., M, n), noisy samples ``s_t x0 + gamma_t eps``
    U : Tensor of shape (..., K, n, dmax), padded orthonormal bases (may require grad)
    dims : K ints d_k (None: every component has dmax)
    log_pi : Tensor of shape (..., K), log mixture weights (None: uniform)
    s_t, gamma_t : floats or Tensors broadcastable to (..., M)

    Returns
    -------
    Tensor of shape (..., M, n), dtype of x_t
    """
    _check(x_t, U)
    z = _coefficients(x_t, U)  # (..., K, M, dmax)
    w = torch.softmax(_logits(z, dims, log_pi, s_t, gamma_t, U), dim=-1)  # (..., M, K)
    s = _coef(s_t, x_t)
    g = _coef(gamma_t, x_t)
    c = s / (s * s + g * g)
    weighted = z * w.transpose(-1, -2)[..., None]  # (..., K, M, dmax)
    return c * (weighted @ U.to(x_t.dtype).transpose(-1, -2)).sum(-3)


def score(
    x_t: Tensor,
    U: Tensor,
    dims: DimsLike = None,
    log_pi: Tensor | None = None,
    s_t: ScalarLike = 1.0,
    gamma_t: ScalarLike = 1.0,
) -> Tensor:
    """Score ``grad log p_t(x_t) = (s_t E[x0|x_t] - x_t) / gamma_t^2`` (spec section 2): (..., M, n)."""
    s = _coef(s_t, x_t)
    g = _coef(gamma_t, x_t)
    return (s * posterior_mean(x_t, U, dims, log_pi, s_t, gamma_t) - x_t) / (g * g)


def exact_denoiser(bases: Sequence[Tensor] | Tensor, weights: Sequence[float] | Tensor | None = None) -> Denoiser:
    """Optimal VE/EDM denoiser ``D(x, sigma) = E[x0 | x0 + sigma eps]`` of a MoLRG (spec section 3).

    ``bases``: list of (n, d_k) or padded (K, n, dmax); ``weights``: pi (K,), default uniform.
    The returned ``D(x (M, n), sigma float or (M,)) -> (M, n)`` runs in the dtype/device of ``x``.
    """
    if isinstance(bases, Tensor):
        if bases.ndim != 3:
            raise ValueError(f"bases: expected a padded (K, n, dmax) tensor, got {tuple(bases.shape)}")
        U0 = bases.detach()
        dims = [int(v) for v in (U0.square().sum(-2) > 0.5).sum(-1).tolist()]
    else:
        U0 = pad_bases([B.detach() for B in bases])
        dims = [int(B.shape[1]) for B in bases]
    K = U0.shape[0]
    if weights is None:
        pi = torch.full((K,), 1.0 / K, dtype=torch.float64)
    else:
        pi = torch.as_tensor(weights, dtype=torch.float64).detach().cpu().reshape(-1)
        if pi.shape[0] != K or bool((pi < 0).any()):
            raise ValueError(f"weights: expected {K} non-negative entries, got {pi.tolist()}")
        pi = pi / pi.sum()
    log_pi0 = torch.log(pi)
    cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def denoiser(x: Tensor, sigma: Tensor | float) -> Tensor:
        key = (x.device, x.dtype)
        if key not in cache:  # one copy per device/dtype, not one per call
            cache[key] = (U0.to(device=x.device, dtype=x.dtype), log_pi0.to(device=x.device, dtype=x.dtype))
        U, log_pi = cache[key]
        return posterior_mean(x, U, dims, log_pi, 1.0, sigma)

    return denoiser
