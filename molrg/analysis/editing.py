"""Semantic editing along a component's basis vectors (spec section 10).

Moving ``x`` along column j of ``U_k`` changes the latent coordinate ``a_j = U_k[:, j]^T x`` by the
step and leaves the other coordinates and the off-subspace residual untouched; a random direction
of the same norm mostly leaves the subspace.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["edit_along_basis", "edit_effects", "random_direction_edit"]


def _amounts(amounts: float | Sequence[float] | Tensor, like: Tensor) -> Tensor:
    a = torch.as_tensor(amounts, dtype=like.dtype, device=like.device).reshape(-1)
    if a.numel() < 1:
        raise ValueError("amounts: need at least one step size")
    return a


def edit_along_basis(
    x: Tensor, U_k: Tensor, coord_index: int, amounts: float | Sequence[float] | Tensor
) -> Tensor:
    """``x + t U_k[:, j]`` for each step t (spec section 10).

    Parameters
    ----------
    x : Tensor of shape (..., n); U_k : Tensor of shape (n, d_k); coord_index : j in [0, d_k)
    amounts : A step sizes

    Returns
    -------
    Tensor of shape (A, ..., n)
    """
    if U_k.ndim != 2 or U_k.shape[0] != x.shape[-1]:
        raise ValueError(f"U_k: expected shape ({x.shape[-1]}, d_k), got {tuple(U_k.shape)}")
    if not 0 <= coord_index < U_k.shape[1]:
        raise ValueError(f"coord_index={coord_index} must be in [0, {U_k.shape[1]})")
    a = _amounts(amounts, x)
    direction = U_k[:, coord_index].to(x.dtype)
    return x[None] + a.reshape((-1,) + (1,) * x.ndim) * direction


def random_direction_edit(
    x: Tensor, amounts: float | Sequence[float] | Tensor, *, seed: int = 0
) -> Tensor:
    """``x + t v`` with ``v`` a random unit vector per sample, drawn from ``seed`` (spec section 10).

    Returns
    -------
    Tensor of shape (A, ..., n)
    """
    a = _amounts(amounts, x)
    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(x.shape, generator=g, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    v = v / v.norm(dim=-1, keepdim=True)
    return x[None] + a.reshape((-1,) + (1,) * x.ndim) * v


def edit_effects(x: Tensor, x_edited: Tensor, U_k: Tensor) -> dict[str, Tensor]:
    """Latent-coordinate change ``U_k^T (x' - x)`` (..., d_k) and off-subspace norm of the change (...,)."""
    delta = x_edited - x
    coords = delta @ U_k.to(delta.dtype)
    off = (delta - coords @ U_k.to(delta.dtype).T).norm(dim=-1)
    return {"coordinate_change": coords, "off_subspace": off}
