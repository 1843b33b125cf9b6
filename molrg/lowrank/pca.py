"""Closed-form K = 1 fit: top-d principal subspace of the data (spec sections 4-5)."""

from __future__ import annotations

import torch
from torch import Tensor


def pca_bases(X: Tensor, d: int) -> Tensor:
    """Top-d left singular vectors of X^T, i.e. argmax_U tr(U^T X^T X U) (spec section 4, K = 1).

    Zero padding rows of X change nothing. When rank(X) < d (e.g. N < d noiseless) the missing
    directions are an arbitrary orthonormal completion, as any global optimum would be (section 11).

    Parameters
    ----------
    X : Tensor of shape (B, N, n)
    d : intrinsic dimension, 1 <= d <= n

    Returns
    -------
    Tensor of shape (B, 1, n, d)
    """
    n = X.shape[-1]
    if not 1 <= d <= n:
        raise ValueError(f"dims: need 1 <= d <= n = {n}, got d = {d}")
    Xd = X.to(torch.float64)
    if X.shape[-2] >= d:
        Uf, _, _ = torch.linalg.svd(Xd.transpose(-1, -2), full_matrices=False)
    else:
        Uf, _, _ = torch.linalg.svd(Xd.transpose(-1, -2), full_matrices=True)
    U = Uf[..., :d]
    # Sign convention: largest-magnitude entry of each column positive (reproducible output).
    idx = U.abs().argmax(-2, keepdim=True)
    s = torch.sign(torch.gather(U, -2, idx))
    s = torch.where(s == 0, torch.ones_like(s), s)
    return (U * s).to(X.dtype).unsqueeze(-3)
