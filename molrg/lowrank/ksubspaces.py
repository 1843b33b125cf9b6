"""Batched K-subspaces (subspace clustering) with data-seeded restarts (spec sections 4, 5, 11).

All trials ``B`` and restarts ``R`` run as one tensor program of shape (B, R, ...). Rows of X past
``n_valid[b]`` are zero padding and are ignored, so fits with different N batch together.
Randomness comes from one ``torch.Generator`` shared by all trials (draws of shape (R, ...)), so
trial b's result does not depend on the other trials of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from molrg.bases import column_mask
from molrg.lowrank.memory import chunked
from molrg.lowrank.stiefel import random_stiefel, retract_qr

INITS = ("data", "random")


@dataclass
class KSubspacesResult:
    """Best restart per trial: bases (B, K, n, dmax), assignment (B, N), objective (B,) = sum_i max_k ||U_k^T x_i||^2."""

    bases: Tensor
    assign: Tensor
    objective: Tensor
    best_restart: Tensor
    objectives: Tensor  # (B, R)
    n_iter: int
    converged: Tensor  # (B,) bool, the winning restart's assignment stopped changing


def valid_rows(X: Tensor, n_valid: Tensor | None) -> Tensor:
    """Boolean (B, N): rows i < n_valid[b] (all rows if n_valid is None)."""
    B, N = X.shape[0], X.shape[-2]
    if n_valid is None:
        return torch.ones(B, N, dtype=torch.bool, device=X.device)
    return torch.arange(N, device=X.device)[None, :] < n_valid.to(X.device).reshape(B, 1)


def top_subspace(X: Tensor, z: Tensor, dmax: int, fill: Tensor) -> Tensor:
    """Top-dmax left singular vectors of X^T diag(z) for each (B, R, K) (the K-subspaces refit, section 5).

    X (B, N, n); z (B, R, K, N) 0/1 membership; fill (B, R, K, n, dmax) completes rank-deficient
    clusters (fewer than d_k points) so the result is always orthonormal. Computed in float64
    through the m x m Gram matrix, m = min(N, n) (N x N when N <= n, else the n x n scatter), in
    chunks of fits of at most WORKSPACE_BYTES (molrg.lowrank.memory): no tensor grows with N^2.
    """
    Xd = X.to(torch.float64)
    B, R, K, N = z.shape
    n = X.shape[-1]
    zd = z.to(torch.float64).reshape(B, R * K, N)
    fill = fill.to(torch.float64).expand(B, R, K, n, dmax).reshape(B, R * K, n, dmax)
    m = min(N, n)
    G = Xd @ Xd.transpose(-1, -2) if N <= n else None  # (B, N, N), N <= n

    def part(sl: slice) -> Tensor:
        idx = torch.arange(B * R * K, device=X.device)[sl]
        bi, pi = idx // (R * K), idx % (R * K)
        zc = zd[bi, pi]  # (c, N)
        if G is not None:
            lam, V = torch.linalg.eigh(G[bi] * zc[:, :, None] * zc[:, None, :])
            lam, V = lam.flip(-1)[..., :dmax], V.flip(-1)[..., :dmax]
            if V.shape[-1] < dmax:
                lam = torch.nn.functional.pad(lam, (0, dmax - V.shape[-1]))
                V = torch.nn.functional.pad(V, (0, dmax - V.shape[-1]))
            Y = (Xd[bi] * zc[..., None]).transpose(-1, -2) @ V
        else:
            Xz = Xd[bi] * zc[..., None]
            lam, V = torch.linalg.eigh(Xz.transpose(-1, -2) @ Xz)
            lam, Y = lam.flip(-1)[..., :dmax], V.flip(-1)[..., :dmax]
            Y = Y * lam.clamp_min(0).sqrt().unsqueeze(-2)
        ok = lam > 1e-10 * lam[..., :1].clamp_min(1e-300)
        return torch.where(ok.unsqueeze(-2), Y, fill[bi, pi])

    Y = chunked(part, B * R * K, 8 * (3 * m * m + N * n + 3 * n * dmax))
    return retract_qr(Y.reshape(B, R, K, n, dmax)).to(X.dtype)


def seed_bases(
    X: Tensor,
    dims: Sequence[int],
    n_restarts: int,
    generator: torch.Generator,
    valid: Tensor,
) -> Tensor:
    """Data-seeded initial bases (B, R, K, n, dmax) (spec section 11).

    Component k is seeded from a data point drawn with probability proportional to its residual
    energy w.r.t. the components already seeded (k-means++ style; uniform for k = 0) and its
    d_k - 1 most correlated neighbours (|cosine|). Uniforms are shared across trials.
    """
    B, N, n = X.shape
    K, dmax, R = len(dims), max(dims), n_restarts
    Xd = X.to(torch.float64)
    norms = Xd.norm(dim=-1).clamp_min(1e-300)  # (B, N)
    cols = torch.arange(N, device=X.device)
    sq = (Xd**2).sum(-1)  # (B, N)
    fill = random_stiefel((R, K, n, dmax), dims, generator, torch.float64).to(X.device)
    u = torch.rand((R, K), generator=generator, dtype=torch.float64).to(X.device)
    U = torch.zeros(B, R, K, n, dmax, dtype=torch.float64, device=X.device)
    explained = torch.zeros(B, R, N, dtype=torch.float64, device=X.device)
    for k, d_k in enumerate(dims):
        resid = (sq[:, None, :] - explained).clamp_min(0) * valid[:, None, :]
        uniform = valid[:, None, :].to(torch.float64).expand(B, R, N)
        use_uniform = resid.sum(-1, keepdim=True) <= 1e-12 * sq.sum(-1)[:, None, None].clamp_min(1e-300)
        p = torch.where(use_uniform | (k == 0), uniform, resid)
        cdf = p.cumsum(-1)
        cdf = cdf / cdf[..., -1:].clamp_min(1e-300)
        centre = torch.searchsorted(cdf, u[None, :, k, None].expand(B, R, 1).contiguous()).clamp_max(N - 1)
        centre = centre.squeeze(-1)  # (B, R)
        # |cosine| of the centre with every point, one row per (trial, restart): never the N x N matrix.
        xc = torch.gather(Xd, 1, centre[..., None].expand(B, R, n))  # (B, R, n)
        rows = torch.einsum("brn,bjn->brj", xc, Xd).abs() / (
            torch.gather(norms, 1, centre)[..., None] * norms[:, None, :])
        rows = rows.masked_fill((cols == centre[..., None]) | ~valid[:, None, :], -1.0)
        n_nb = min(d_k - 1, N - 1)
        idx = rows.topk(n_nb, dim=-1).indices if n_nb > 0 else centre[..., None][..., :0]
        ok = torch.gather(rows, -1, idx) > 0 if n_nb > 0 else idx.bool()
        members = torch.cat([centre[..., None], idx], -1)  # (B, R, m)
        member_ok = torch.cat([torch.ones_like(centre[..., None], dtype=torch.bool), ok], -1)
        # The top-d_k subspace of d_k points is their span: orthonormalise them (centre first),
        # completing missing/invalid members with random directions.
        pts = torch.gather(Xd[:, None].expand(B, R, N, n), 2, members[..., None].expand(*members.shape, n))
        Y = fill[None, :, k].expand(B, R, n, dmax).clone()
        m = members.shape[-1]
        Y[..., :m] = torch.where(member_ok[:, :, None, :], pts.transpose(-1, -2), Y[..., :m])
        Uk = retract_qr(Y)
        Uk = Uk * column_mask([d_k], dmax, like=Uk)[0]
        U[:, :, k] = Uk
        explained = torch.maximum(explained, torch.einsum("bin,brnd->brid", Xd, Uk).square().sum(-1))
    return U


def k_subspaces(
    X: Tensor,
    dims: Sequence[int],
    *,
    n_restarts: int = 10,
    max_iter: int = 100,
    seed: int = 0,
    n_valid: Tensor | None = None,
    init: str = "data",
    callback=None,
) -> KSubspacesResult:
    """K-subspaces: alternate k(i) = argmax_k ||U_k^T x_i|| and U_k = top-d_k SVD of cluster k (section 5).

    Parameters
    ----------
    X : Tensor of shape (B, N, n); rows past n_valid[b] are ignored
    dims : d_k per component
    n_restarts : restarts per trial (batched), the best objective wins
    init : "data" (data-seeded, section 11) or "random" (uniform on the Stiefel manifold)
    callback : optional f(iteration, total, objective) -> bool (True stops); total = max_iter, or the
        iteration itself on the last call of a converged run; objective: mean over trials of the
        best restart's sum_i max_k ||U_k^T x_i||^2

    Returns
    -------
    KSubspacesResult
    """
    if init not in INITS:
        raise ValueError(f"init: expected one of {INITS}, got {init!r}")
    B, N, n = X.shape
    K, dmax, R = len(dims), max(dims), int(n_restarts)
    g = torch.Generator().manual_seed(int(seed))
    valid = valid_rows(X, n_valid)
    Xd = X.to(torch.float64)
    if init == "data":
        U = seed_bases(X, dims, R, g, valid)
    else:
        U = random_stiefel((R, K, n, dmax), dims, g, torch.float64).to(X.device).expand(B, R, K, n, dmax)
    mask = column_mask(dims, dmax, like=Xd)
    spare = random_stiefel((R, K, n, dmax), dims, g, torch.float64).to(X.device).expand(B, R, K, n, dmax)
    prev = None
    prev_obj = None
    converged = torch.zeros(B, R, dtype=torch.bool, device=X.device)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        E = torch.einsum("bin,brknd->brkid", Xd, U).square().sum(-1)  # (B, R, K, N)
        assign = E.argmax(-2)  # (B, R, N)
        cur_obj = (E.amax(-2) * valid[:, None]).sum(-1)
        if prev is not None and prev_obj is not None:
            # Converged: assignment fixed, or the (monotone) objective stopped improving (ties).
            stalled = cur_obj <= prev_obj + 1e-12 * cur_obj.abs()
            converged = ((assign == prev) | ~valid[:, None]).all(-1) | stalled
            if bool(converged.all()):
                if callback is not None:
                    callback(it, it, float(cur_obj.amax(-1).mean()))  # the last iteration: it/it
                break
        prev, prev_obj = assign, cur_obj
        z = torch.nn.functional.one_hot(assign, K).permute(0, 1, 3, 2).to(torch.float64) * valid[:, None, None]
        fill = U  # rank-deficient clusters keep their previous extra directions
        U_new = top_subspace(Xd, z, dmax, fill) * mask
        empty = z.sum(-1) == 0  # (B, R, K)
        if bool(empty.any()):
            # Re-seed an empty component from the worst-explained point and its neighbours.
            resid = ((Xd**2).sum(-1)[:, None] - E.amax(-2)) * valid[:, None]
            worst = resid.argmax(-1)  # (B, R)
            zz = torch.nn.functional.one_hot(worst, N).to(torch.float64)[:, :, None]
            Ure = top_subspace(Xd, zz.expand(B, R, K, N), dmax, spare) * mask
            U_new = torch.where(empty[..., None, None], Ure, U_new)
        U = U_new
        if callback is not None and callback(it, max_iter, float(cur_obj.amax(-1).mean())):
            break
    obj = torch.einsum("bin,brknd->brkid", Xd, U).square().sum(-1).amax(-2)
    obj = (obj * valid[:, None]).sum(-1)  # (B, R)
    best = obj.argmax(-1)
    bi = torch.arange(B, device=X.device)
    Ub = U[bi, best]
    assign_b = torch.einsum("bin,bknd->bkid", Xd, Ub).square().sum(-1).argmax(-2)
    return KSubspacesResult(
        bases=Ub.to(X.dtype),
        assign=assign_b,
        objective=obj[bi, best].to(X.dtype),
        best_restart=best,
        objectives=obj.to(X.dtype),
        n_iter=it,
        converged=converged[bi, best],
    )
