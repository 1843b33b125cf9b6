"""Padded bases: K orthonormal bases of unequal dims stored as one (K, n, dmax) tensor."""

from collections.abc import Sequence

import torch
from torch import Tensor


def pad_bases(bases: Sequence[Tensor]) -> Tensor:
    """Stack bases ``U_k`` of shape (n, d_k) into (K, n, dmax), zero columns beyond d_k."""
    if not bases:
        raise ValueError("bases: need at least one basis")
    n = bases[0].shape[0]
    dmax = max(int(U.shape[1]) for U in bases)
    out = bases[0].new_zeros((len(bases), n, dmax))
    for k, U in enumerate(bases):
        if U.ndim != 2 or U.shape[0] != n:
            raise ValueError(f"bases[{k}]: expected shape ({n}, d_k), got {tuple(U.shape)}")
        out[k, :, : U.shape[1]] = U
    return out


def unpad_bases(U: Tensor, dims: Sequence[int]) -> list[Tensor]:
    """Inverse of :func:`pad_bases` for one model: (K, n, dmax) -> list of (n, d_k)."""
    return [U[k, :, : int(d)] for k, d in enumerate(dims)]


def column_mask(dims: Sequence[int], dmax: int | None = None, like: Tensor | None = None) -> Tensor:
    """Mask of shape (K, 1, dmax): 1 for the live columns j < d_k, 0 for padding."""
    dmax = int(max(dims)) if dmax is None else dmax
    cols = torch.arange(dmax, device=like.device if like is not None else None)
    live = cols[None, :] < torch.as_tensor(list(dims), device=cols.device)[:, None]
    mask = live.to(like.dtype if like is not None else torch.get_default_dtype())
    return mask[:, None, :]
