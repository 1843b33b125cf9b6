"""Convergence test of the exact-loss fits that scales with the data's conditioning (spec sections 4, 11).

At fixed assignments the hard-max / linear loss is -kappa sum_k tr(U_k^T S_k U_k) + const with
S_k = sum_{i in k} w_i x_i x_i^T, so a local optimum has each U_k spanning a top-d_k eigenspace of
S_k. The Davis-Kahan sin-theta theorem bounds the distance of U_k to that eigenspace by

    ||sin Theta||_F <= ||(I - P_k) S_k U_k||_F / (lambda_min(U_k^T S_k U_k) - lambda_max((I - P_k) S_k (I - P_k)))

(residual over the spectral gap), which is small only when the gradient is small *relative to the
curvature*: a slow saddle of ill-conditioned data (tiny gradient, gap <= 0) is not certified. When
nothing is left outside U_k (lambda_max((I - P_k) S_k (I - P_k)) <= tol^2 tr S_k, e.g. N_k <= d_k)
every completion is optimal and the distance is sqrt of that relative residual.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from molrg.bases import column_mask
from molrg.lowrank.memory import chunked


def optimum_distance(U: Tensor, X: Tensor, weights: Tensor, dims: Sequence[int]) -> Tensor:
    """Estimated distance ||sin Theta||_F of each fit to a local optimum (max over k); U (B, R, K, n, dmax) -> (B, R).

    X (B, N, n), weights (B, N) (1/N, 0 for padding). Pairwise products are chunked
    (molrg.lowrank.memory): no tensor grows with N^2 beyond min(N, n)^2 per (fit, component).
    """
    B, N, n = X.shape
    R, K, dmax = U.shape[1], U.shape[2], U.shape[-1]
    M = R * K
    Xd, Ud, wd = X.to(torch.float64), U.to(torch.float64), weights.to(torch.float64)
    Ut = Ud.reshape(B, M, n, dmax).permute(0, 2, 1, 3).reshape(B, n, M * dmax)
    P = torch.bmm(Xd, Ut).view(B, N, M, dmax)  # X U_k
    E = P.square().sum(-1).view(B, N, R, K)
    z = (torch.nn.functional.one_hot(E.argmax(-1), K).to(torch.float64) * wd[:, :, None, None]).view(B, N, M)
    G = torch.bmm(Xd.transpose(1, 2), (z[..., None] * P).view(B, N, M * dmax)).view(B, n, M, dmax)  # S_k U_k
    Um = Ut.view(B, n, M, dmax)
    H = torch.einsum("bnmd,bnme->bmde", Um, G)  # U_k^T S_k U_k
    resid = (G - torch.einsum("bnmd,bmde->bnme", Um, H)).square().sum((1, 3)).sqrt()  # (B, M)
    mask = column_mask(dims, dmax, like=Xd).reshape(1, 1, K, dmax).expand(B, R, K, dmax).reshape(B, M, dmax)
    trace = (z * Xd.square().sum(-1)[..., None]).sum(1)  # tr S_k, (B, M)
    big = 2 * trace.amax().clamp_min(1.0)
    mu = torch.linalg.eigvalsh(H + torch.diag_embed((1 - mask) * big)).amin(-1)  # live block's smallest
    m = min(N, n)
    gram = torch.bmm(Xd, Xd.transpose(1, 2)) if N <= n else None  # (B, N, N), N <= n

    def top_outside(sl: slice) -> Tensor:
        idx = torch.arange(B * M, device=X.device)[sl]
        bi, ki = idx // M, idx % M
        zc, Pc = z[bi, :, ki], P[bi, :, ki]  # (c, N), (c, N, dmax)
        if gram is not None:  # D (X X^T - P P^T) D, D = diag(sqrt z): the N x N form
            sq = zc.sqrt()
            A = (gram[bi] - Pc @ Pc.transpose(1, 2)) * sq[:, :, None] * sq[:, None, :]
        else:  # (I - U U^T) S_k (I - U U^T): the n x n form
            Rk = Xd[bi] - Pc @ Um[bi, :, ki].transpose(1, 2)
            A = Rk.transpose(1, 2) @ (Rk * zc[..., None])
        return torch.linalg.eigvalsh(A)[..., -1].clamp_min(0)

    nu = chunked(top_outside, B * M, 8 * (3 * m * m + N * n + N * dmax)).view(B, M)
    gap = mu - nu
    dk = torch.where(gap > 0, resid / gap.clamp_min(1e-300), torch.full_like(gap, float("inf")))
    empty_outside = (nu / trace.clamp_min(1e-300)).sqrt()
    dist = torch.minimum(dk, empty_outside).masked_fill(trace <= 0, 0.0)
    return dist.view(B, R, K).amax(-1).to(X.dtype)
