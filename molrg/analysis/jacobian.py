"""Numerical rank of the denoiser Jacobian ``d x_theta / d x_t`` (spec section 9).

For the low-rank model the rank ratio rank/n is ``d/n`` at high SNR (one component selected) and
``sum_k d_k / n`` at low SNR (weights spread over all components).

The Jacobian is built from n vector-Jacobian products of the batched denoiser (one per output
coordinate, vmapped into one backward pass when the denoiser's ops allow it). This needs only
autograd, so it works for any differentiable denoiser, and it is exact because a denoiser treats
the samples of a batch independently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from molrg.sampling.samplers import initial_noise, sample_heun
from molrg.sampling.schedules import get_sigmas_karras

__all__ = [
    "denoiser_jacobian",
    "learned_subspace_report",
    "learned_subspaces",
    "jacobian_rank",
    "jacobian_rank_along_trajectory",
    "numerical_rank",
]

Denoiser = Callable[[Tensor, Tensor], Tensor]


def numerical_rank(singular_values: Tensor, energy: float = 0.99) -> Tensor:
    """Smallest r whose top-r singular values hold ``energy`` of ``sum s_i^2`` (spec section 9).

    ``singular_values``: (..., r) in descending order; returns (...,) int64 (0 for a zero matrix).
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy={energy} must be in (0, 1]")
    sq = singular_values.square()
    total = sq.sum(-1, keepdim=True)
    frac = sq.cumsum(-1) / total.clamp_min(torch.finfo(sq.dtype).tiny)
    # tolerance so that energy = 1 and round-off do not add spurious directions
    rank = (frac < energy - 1e-12).sum(-1) + 1
    return torch.where(total[..., 0] > 0, rank, torch.zeros_like(rank))


def denoiser_jacobian(denoiser: Denoiser, x: Tensor, sigma: float | Tensor) -> Tensor:
    """Per-sample Jacobians ``J[m] = d D(x, sigma)[m] / d x[m]`` of shape (M, n, n) (spec section 9)."""
    if x.ndim != 2:
        raise ValueError(f"x: expected shape (M, n), got {tuple(x.shape)}")
    M, n = x.shape
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(M)
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        out = denoiser(xg, sig)
        if out.shape != x.shape:
            raise ValueError(f"denoiser returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
        # cotangent j selects output coordinate j of every sample
        eye = torch.eye(n, dtype=out.dtype, device=out.device)[:, None, :].expand(n, M, n)
        try:  # all n VJPs in one vmapped backward pass
            (rows,) = torch.autograd.grad(out, xg, eye, retain_graph=True, is_grads_batched=True)
        except RuntimeError:  # a denoiser op without a batching rule: one VJP per coordinate
            rows = torch.stack(
                [torch.autograd.grad(out, xg, eye[j], retain_graph=j < n - 1)[0] for j in range(n)]
            )
    return rows.transpose(0, 1)  # (M, n_out, n_in)


def jacobian_rank(
    denoiser: Denoiser, x: Tensor, sigmas: Sequence[float] | Tensor, energy: float = 0.99
) -> Tensor:
    """Numerical rank of ``d D(x, sigma) / dx`` for every sigma and sample (spec section 9).

    Parameters
    ----------
    x : Tensor of shape (M, n), evaluation points (used for every sigma)
    sigmas : S noise levels

    Returns
    -------
    int64 Tensor of shape (S, M)
    """
    sig = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    ranks = []
    for s in sig.tolist():
        J = denoiser_jacobian(denoiser, x, s)
        ranks.append(numerical_rank(torch.linalg.svdvals(J.to(torch.float64)), energy))
    return torch.stack(ranks)


def jacobian_rank_along_trajectory(
    denoiser: Denoiser,
    n: int,
    sigmas: Sequence[float] | Tensor | None = None,
    seed: int = 0,
    *,
    n_samples: int = 4,
    energy: float = 0.99,
    steps: int = 18,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Jacobian rank at each noise level of a Heun trajectory (spec section 9), JSON-able.

    ``sigmas``: the sampling grid (decreasing, trailing 0 optional; default Karras with ``steps``).
    The rank is evaluated at the state ``x_i`` the sampler holds at each ``sigma_i > 0``.

    Returns
    -------
    dict with ``sigmas`` (S floats), ``rank_mean`` and ``rank_ratio`` (= rank_mean / n) per sigma,
    ``ranks`` (S lists of n_samples ints), ``n`` and ``energy``
    """
    if sigmas is None:
        grid = get_sigmas_karras(steps, device=device)
    else:
        grid = torch.as_tensor(sigmas, dtype=torch.float64, device=device).reshape(-1)
        if float(grid[-1]) != 0.0:
            grid = torch.cat([grid, grid.new_zeros(1)])
    states: list[tuple[float, Tensor]] = []

    def keep(info: dict[str, Any]) -> None:
        states.append((float(info["sigma"]), info["x"].clone()))

    x0 = initial_noise(n_samples, n, seed, sigma_max=float(grid[0]), device=device)
    sample_heun(denoiser, x0, grid, callback=keep)
    out_sigmas, ranks = [], []
    for s, x in states:
        if s <= 0:
            continue
        r = jacobian_rank(denoiser, x, [s], energy)[0]
        out_sigmas.append(s)
        ranks.append([int(v) for v in r])
    means = [sum(r) / len(r) for r in ranks]
    return {
        "sigmas": out_sigmas,
        "rank_mean": means,
        "rank_ratio": [m / n for m in means],
        "ranks": ranks,
        "n": int(n),
        "energy": float(energy),
    }


def learned_subspaces(
    denoiser: Denoiser,
    X: Tensor,
    labels: Tensor,
    dims: Sequence[int],
    sigma: float = 0.05,
    *,
    n_points: int = 32,
    seed: int = 0,
) -> list[Tensor]:
    """Subspaces a denoiser has learned, read from its Jacobian at low noise (spec section 13).

    For component k: ``x = x0 + sigma eps`` at up to ``n_points`` points ``x0`` of ``X`` with
    ``labels == k`` (ground-truth labels, or a fitted model's assignment), the Jacobians
    ``J_m = dD(x_m; sigma)/dx`` stacked into ``(M_k n, n)``; its top-``d_k`` right singular vectors
    (the top eigenvectors of ``sum_m J_m^T J_m``) span the learned subspace. A generalising
    denoiser has ``J ~ c P_k`` there; a memorising one is nearly constant near its training points.

    Returns
    -------
    K Tensors of shape (n, d_k), orthonormal columns, float64, on X's device
    """
    if X.ndim != 2 or labels.shape != (X.shape[0],):
        raise ValueError(f"expected X (N, n) and labels (N,), got {tuple(X.shape)} and {tuple(labels.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for k, d in enumerate(dims):
        pts = X[labels.to(X.device) == k][:n_points].to(torch.float64)
        if pts.shape[0] < 1:
            raise ValueError(f"component {k}: no points with label {k}")
        eps = torch.randn(pts.shape, generator=g, dtype=torch.float64).to(pts.device)
        J = denoiser_jacobian(denoiser, pts + sigma * eps, sigma).to(torch.float64)  # (M, n, n)
        _, _, Vh = torch.linalg.svd(J.reshape(-1, J.shape[-1]), full_matrices=False)
        out.append(Vh[: int(d)].T.contiguous())
    return out


def learned_subspace_report(
    denoiser: Denoiser,
    X: Tensor,
    labels: Tensor,
    dims: Sequence[int],
    true_bases: Sequence[Tensor] | None = None,
    sigma: float = 0.05,
    *,
    n_points: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """JSON-able learned subspaces (as lists) and, with ``true_bases``, their recovery report
    (:func:`molrg.analysis.metrics.recovery_report`: max/mean error, per component, angles)."""
    from molrg.analysis.metrics import recovery_report  # deferred: scipy

    bases = learned_subspaces(denoiser, X, labels, dims, sigma, n_points=n_points, seed=seed)
    out: dict[str, Any] = {
        "sigma": float(sigma),
        "n_points": int(n_points),
        "dims": [int(d) for d in dims],
        "bases": [B.cpu().tolist() for B in bases],
    }
    if true_bases is not None:
        out["recovery"] = recovery_report([B.cpu() for B in bases], [B.to(torch.float64).cpu() for B in true_bases])
    return out
