"""Subspace recovery and clustering metrics (spec section 6).

All functions accept padded bases ``(..., K, n, dmax)`` whose columns ``j >= d_k`` are zero
(docs/CONTRACTS.md): zero columns drop out of ``U U^T`` and ``||U^T x||^2``, so nothing needs a mask.
Projection distances use ``||P1 - P2||_F^2 = ||(I - P2) U1||_F^2 + ||(I - P1) U2||_F^2``
(``= tr P1 + tr P2 - 2 ||U1^T U2||_F^2`` for orthonormal columns) and never form an ``n x n``
projector; the residual form avoids the cancellation that would leave ~1e-8 for equal subspaces. Recovery metrics are computed in float64 whatever the input dtype.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from molrg.bases import column_mask, pad_bases

__all__ = [
    "assign_components",
    "cluster_sizes",
    "component_errors",
    "error_matrix",
    "explained_energy",
    "match_components",
    "matched_errors",
    "principal_angles",
    "projection_distance",
    "recovery_error",
    "recovery_report",
    "subspace_clustering_objective",
    "success",
]

BasesLike = Sequence[Tensor] | Tensor

# Up to this K the best permutation is found by enumerating all K! permutations in one tensor
# program (720 for K = 6); beyond it, scipy's Hungarian solver runs per item.
_BRUTE_FORCE_MAX_K = 6


def _check_pair(U_hat: Tensor, U: Tensor, name: str) -> None:
    if U_hat.ndim < 2 or U.ndim < 2:
        raise ValueError(f"{name}: bases need shape (..., n, d), got {tuple(U_hat.shape)} and {tuple(U.shape)}")
    if U_hat.shape[-2] != U.shape[-2]:
        raise ValueError(
            f"{name}: ambient dims differ: U_hat has n={U_hat.shape[-2]}, U has n={U.shape[-2]}"
        )


def principal_angles(U_hat: Tensor, U: Tensor) -> Tensor:
    """Principal angles (radians, ascending) between span(U_hat) and span(U) (spec section 6).

    Parameters
    ----------
    U_hat : Tensor of shape (..., n, d1), orthonormal columns
    U : Tensor of shape (..., n, d2), orthonormal columns

    Returns
    -------
    Tensor of shape (..., min(d1, d2)), float64
    """
    _check_pair(U_hat, U, "principal_angles")
    A, B = U_hat.to(torch.float64), U.to(torch.float64)
    if A.shape[-1] > B.shape[-1]:
        A, B = B, A
    # angle = atan2(sin, cos): arccos alone loses all accuracy for angles below ~1e-8.
    M = A.transpose(-1, -2) @ B
    cosines = torch.linalg.svdvals(M)  # descending -> angles ascending
    sines = torch.linalg.svdvals(A - B @ M.transpose(-1, -2)).flip(-1)  # ascending, same angles
    return torch.atan2(sines, cosines)


def projection_distance(U_hat: Tensor, U: Tensor) -> Tensor:
    """``||U_hat U_hat^T - U U^T||_F`` batched over leading dims (spec section 6).

    Parameters
    ----------
    U_hat : Tensor of shape (..., n, d1); U : Tensor of shape (..., n, d2)

    Returns
    -------
    Tensor of shape (...,), float64
    """
    _check_pair(U_hat, U, "projection_distance")
    A = U_hat.to(torch.float64)
    B = U.to(torch.float64)
    M = A.transpose(-1, -2) @ B  # (..., d1, d2)
    res_a = A - B @ M.transpose(-1, -2)  # (I - P_B) A
    res_b = B - A @ M  # (I - P_A) B
    return (res_a.square().sum((-2, -1)) + res_b.square().sum((-2, -1))).sqrt()


def error_matrix(U_hat: Tensor, U: Tensor) -> Tensor:
    """K x K projection distances ``E[..., i, j] = ||P_hat_i - P_j||_F`` (spec section 6).

    Parameters
    ----------
    U_hat : Tensor of shape (..., K1, n, d1), padded fitted bases (row index i)
    U : Tensor of shape (..., K2, n, d2), padded true bases (column index j)

    Returns
    -------
    Tensor of shape (..., K1, K2), float64
    """
    if U_hat.ndim < 3 or U.ndim < 3:
        raise ValueError(
            f"error_matrix: expected padded bases (..., K, n, d), got {tuple(U_hat.shape)} and {tuple(U.shape)}"
        )
    _check_pair(U_hat, U, "error_matrix")
    A = U_hat.to(torch.float64)[..., :, None, :, :]  # (..., K1, 1, n, d1)
    B = U.to(torch.float64)[..., None, :, :, :]  # (..., 1, K2, n, d2)
    return projection_distance(A, B)


def match_components(E: Tensor) -> tuple[Tensor, Tensor]:
    """Best assignment of fitted to true components minimising the summed error (spec section 6).

    Parameters
    ----------
    E : Tensor of shape (..., K, K), ``E[..., i, j]`` = error of fitted i against true j

    Returns
    -------
    perm : int64 Tensor of shape (..., K); ``perm[..., j]`` is the fitted component matched to true j
    errors : Tensor of shape (..., K); ``errors[..., j] = E[..., perm[..., j], j]``
    """
    if E.ndim < 2 or E.shape[-1] != E.shape[-2]:
        raise ValueError(f"match_components: expected a square (..., K, K) matrix, got {tuple(E.shape)}")
    K = E.shape[-1]
    Et = E.transpose(-1, -2)  # (..., true j, fitted i)
    if K <= _BRUTE_FORCE_MAX_K:
        perms = torch.tensor(list(itertools.permutations(range(K))), device=E.device, dtype=torch.long)
        cols = torch.arange(K, device=E.device)
        flat = Et.reshape(-1, K, K)
        # chunks keep the (items, K!, K) cost tensor small for large batches
        step = max(1, (1 << 22) // (perms.shape[0] * K))
        best = torch.cat(
            [flat[i : i + step][:, cols[None, :], perms].sum(-1).argmin(-1) for i in range(0, max(flat.shape[0], 1), step)]
        )
        perm = perms[best].reshape(E.shape[:-1])  # (..., K)
    else:
        flat_np = Et.detach().reshape(-1, K, K).cpu().numpy()
        rows = []
        for item in flat_np:
            r, c = linear_sum_assignment(item)
            p = np.empty(K, dtype=np.int64)
            p[r] = c
            rows.append(p)
        perm = torch.as_tensor(np.stack(rows), device=E.device).reshape(E.shape[:-1])
    errors = torch.gather(Et, -1, perm[..., None]).squeeze(-1)
    return perm, errors


def matched_errors(U_hat: Tensor, U: Tensor) -> Tensor:
    """Per-component recovery errors after the best permutation (spec section 6).

    Parameters
    ----------
    U_hat, U : Tensors of shape (..., K, n, dmax) (padded; the two dmax may differ)

    Returns
    -------
    Tensor of shape (..., K), float64, indexed by true component
    """
    if U_hat.shape[:-3] != U.shape[:-3] or U_hat.shape[-3] != U.shape[-3]:
        raise ValueError(
            f"matched_errors: batch/K shapes differ: {tuple(U_hat.shape)} vs {tuple(U.shape)}"
        )
    return match_components(error_matrix(U_hat, U))[1]


def component_errors(
    U_hat: Tensor,
    U_true: Tensor,
    dims_hat: Sequence[int] | None = None,
    dims_true: Sequence[int] | None = None,
) -> Tensor:
    """Contract name of :func:`matched_errors`; given dims, padding columns are masked first (section 6)."""
    if dims_hat is not None:
        U_hat = U_hat * column_mask(dims_hat, U_hat.shape[-1], U_hat)
    if dims_true is not None:
        U_true = U_true * column_mask(dims_true, U_true.shape[-1], U_true)
    return matched_errors(U_hat, U_true)


def _as_padded(bases: BasesLike) -> Tensor:
    if isinstance(bases, Tensor):
        if bases.ndim == 2:
            return bases[None]
        return bases
    return pad_bases([torch.as_tensor(B) for B in bases])


def recovery_error(bases_hat: BasesLike, bases_true: BasesLike) -> float:
    """Max over components of ``||P_hat - P||_F`` after the best permutation (spec section 6).

    ``bases_*``: a list of (n, d_k) tensors, a padded (K, n, dmax) tensor, or one (n, d) basis.
    """
    A, B = _as_padded(bases_hat), _as_padded(bases_true)
    if A.ndim != 3 or B.ndim != 3:
        raise ValueError("recovery_error: expected one model (K, n, dmax); use matched_errors for batches")
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"recovery_error: K differs: {A.shape[0]} fitted vs {B.shape[0]} true components")
    return float(matched_errors(A, B).max())


def recovery_report(bases_hat: BasesLike, bases_true: BasesLike) -> dict[str, object]:
    """JSON-able recovery summary: max/mean error, per-component errors, matching, angles (section 6)."""
    A, B = _as_padded(bases_hat), _as_padded(bases_true)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"recovery_report: K differs: {A.shape[0]} fitted vs {B.shape[0]} true components")
    perm, errors = match_components(error_matrix(A, B))
    angles = []
    for j in range(B.shape[0]):
        Uh = A[int(perm[j])]
        Ut = B[j]
        Uh = Uh[:, Uh.square().sum(0) > 0]  # drop padding columns before the SVD
        Ut = Ut[:, Ut.square().sum(0) > 0]
        angles.append([float(a) for a in principal_angles(Uh, Ut)])
    return {
        "max_error": float(errors.max()),
        "mean_error": float(errors.mean()),
        "errors": [float(e) for e in errors],
        "permutation": [int(p) for p in perm],
        "principal_angles": angles,
    }


def success(errors: Tensor | float, threshold: float = 0.5, *, component_dim: int | None = -1) -> Tensor | bool:
    """Trial success: max component error below ``threshold`` (spec section 6).

    ``errors``: a float (-> bool), or a tensor reduced by max over ``component_dim``
    (default -1, i.e. (..., K) -> (...,)); ``component_dim=None`` compares elementwise.
    """
    if not isinstance(errors, Tensor):
        return bool(float(errors) < threshold)
    if component_dim is not None and errors.ndim > 0:
        errors = errors.amax(component_dim)
    return errors < threshold


def _check_data(X: Tensor, U: Tensor, name: str) -> None:
    if X.ndim < 2 or U.ndim < 3:
        raise ValueError(f"{name}: expected X (..., N, n) and U (..., K, n, dmax), got {tuple(X.shape)}, {tuple(U.shape)}")
    if X.shape[-1] != U.shape[-2]:
        raise ValueError(f"{name}: X has n={X.shape[-1]} but U has n={U.shape[-2]}")


def _coeff_energy(X: Tensor, U: Tensor) -> Tensor:
    """``||U_k^T x_i||^2`` of shape (..., N, K)."""
    return torch.einsum("...in,...knd->...ikd", X, U.to(X.dtype)).square().sum(-1)


def assign_components(X: Tensor, U: Tensor) -> Tensor:
    """Hard assignment ``k(i) = argmax_k ||U_k^T x_i||`` (spec sections 4, 6): (..., N) int64."""
    _check_data(X, U, "assign_components")
    return _coeff_energy(X, U).argmax(-1)


def subspace_clustering_objective(X: Tensor, U: Tensor) -> Tensor:
    """``sum_i max_k ||U_k^T x_i||^2`` (spec section 4): X (..., N, n), U (..., K, n, dmax) -> (...,)."""
    _check_data(X, U, "subspace_clustering_objective")
    return _coeff_energy(X, U).amax(-1).sum(-1)


def explained_energy(X: Tensor, U: Tensor, labels: Tensor | None = None) -> Tensor:
    """``sum_i ||P_{k(i)} x_i||^2 / sum_i ||x_i||^2`` (spec section 6); k(i) = argmax if no labels.

    Parameters
    ----------
    X : Tensor of shape (..., N, n); U : Tensor of shape (..., K, n, dmax)
    labels : optional int64 Tensor of shape (..., N)

    Returns
    -------
    Tensor of shape (...,)
    """
    _check_data(X, U, "explained_energy")
    energy = _coeff_energy(X, U)
    if labels is None:
        captured = energy.amax(-1)
    else:
        if labels.shape != X.shape[:-1]:
            raise ValueError(f"explained_energy: labels shape {tuple(labels.shape)} != {tuple(X.shape[:-1])}")
        captured = torch.gather(energy, -1, labels[..., None].long()).squeeze(-1)
    return captured.sum(-1) / X.square().sum((-2, -1)).clamp_min(torch.finfo(X.dtype).tiny)


def cluster_sizes(X: Tensor, U: Tensor) -> Tensor:
    """Number of samples assigned to each component by argmax (spec section 6): (..., K) int64."""
    labels = assign_components(X, U)
    K = U.shape[-3]
    return torch.nn.functional.one_hot(labels, K).sum(-2)
