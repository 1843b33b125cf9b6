"""Initial bases of diffusion training: random, data-seeded, PCA or K-subspaces starts (spec section 4, remedies of local minima)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from molrg.bases import column_mask
from molrg.lowrank.ksubspaces import k_subspaces, seed_bases
from molrg.lowrank.pca import pca_bases
from molrg.lowrank.stiefel import random_stiefel

KSUBSPACES_INIT_RESTARTS = 10  # restarts of the K-subspaces run behind init="ksubspaces" (and "pca" for K >= 2)


def initial_bases(
    X: Tensor, dims: Sequence[int], init: str, R: int, g: torch.Generator, valid: Tensor, n_valid: Tensor | None = None
) -> tuple[Tensor, dict[str, Any]]:
    """Initial bases (B, R, K, n, dmax) for diffusion training (spec section 4, remedies of local minima)."""
    B, _, n = X.shape
    K, dmax = len(dims), max(dims)
    info: dict[str, Any] = {}
    if init == "random":
        U = random_stiefel((R, K, n, dmax), dims, g, torch.float64).expand(B, R, K, n, dmax)
    elif init == "data":
        U = seed_bases(X, dims, R, g, valid)
    elif init == "pca" and K == 1:
        P = pca_bases(X.to(torch.float64), dims[0])[:, 0]  # (B, n, d) the top principal subspace
        rot = random_stiefel((R, 1, dims[0], dims[0]), dims, g, torch.float64)[:, 0]  # restart 0 keeps it
        rot[0] = torch.eye(dims[0], dtype=torch.float64)
        U = torch.einsum("bnd,rde->brne", P, rot)[:, :, None]
    elif init == "pca":
        # K >= 2: K-subspaces (data-seeded restarts) on the coordinates in the top-(sum d_k) principal
        # subspace, mapped back: principal directions of a union of subspaces are not grouped by subspace.
        P = pca_bases(X.to(torch.float64), min(sum(dims), n - 1))[:, 0]  # (B, n, D)
        ks = k_subspaces(X.to(torch.float64) @ P, dims, n_restarts=KSUBSPACES_INIT_RESTARTS,
                         seed=int(g.initial_seed()), n_valid=n_valid)
        U = torch.einsum("bnD,bkDd->bknd", P, ks.bases.to(torch.float64))[:, None].expand(B, R, K, n, dmax)
        info["ksubspaces_objective"] = ks.objective.tolist()
    else:
        ks = k_subspaces(X, dims, n_restarts=KSUBSPACES_INIT_RESTARTS, seed=int(g.initial_seed()), n_valid=n_valid)
        U = ks.bases.to(torch.float64)[:, None].expand(B, R, K, n, dmax)
        info["ksubspaces_objective"] = ks.objective.tolist()
    return (U * column_mask(dims, dmax, like=U)).to(device=X.device, dtype=X.dtype).contiguous(), info
