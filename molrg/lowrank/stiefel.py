"""Optimisation on products of Stiefel manifolds St(n, d_k) with padded bases (spec section 5).

Parameters are batched tensors ``U`` of shape ``(..., K, n, dmax)`` whose columns ``j >= d_k`` are
zero (docs/CONTRACTS.md). Every operation re-applies the column mask so padding stays exactly zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from molrg.bases import column_mask

RETRACTIONS = ("qr", "polar")
OPTIMIZERS = ("adam", "sgd")


def sym(A: Tensor) -> Tensor:
    """Symmetric part (A + A^T)/2 over the last two dims."""
    return 0.5 * (A + A.transpose(-1, -2))


def _flat(A: Tensor) -> Tensor:
    """View (..., a, b) as (-1, a, b): batched matmul over >3 dims is much slower on CPU."""
    return A.reshape(-1, A.shape[-2], A.shape[-1])


def tangent_project(U: Tensor, G: Tensor) -> Tensor:
    """Riemannian gradient / tangent projection ``G - U sym(U^T G)`` (spec section 5, embedded metric)."""
    shape = torch.broadcast_shapes(U.shape, G.shape)
    Uf, Gf = _flat(U.expand(shape)), _flat(G.expand(shape))
    return (Gf - torch.bmm(Uf, sym(torch.bmm(Uf.transpose(1, 2), Gf)))).reshape(shape)


def retract_qr(Y: Tensor, mask: Tensor | None = None) -> Tensor:
    """QR retraction with sign fix (diag R > 0); padded columns (mask 0) stay zero (spec section 5).

    Computed as Cholesky-QR (Q = Y R^{-1}, R^T R = Y^T Y: the same Q as the sign-fixed QR, and
    ~20x faster for many small matrices on CPU), falling back to Householder QR when the Gram
    matrix is not numerically positive definite.
    """
    if mask is not None:
        Y = Y * mask
        fill = torch.diag_embed(1.0 - mask.squeeze(-2)).expand(*Y.shape[:-2], Y.shape[-1], Y.shape[-1])
    else:
        fill = None
    shape = Y.shape
    Yf = _flat(Y)
    M = torch.bmm(Yf.transpose(1, 2), Yf)
    if fill is not None:
        M = M + _flat(fill)
    L, info = torch.linalg.cholesky_ex(M)
    if bool((info == 0).all()):
        diag = torch.diagonal(L, dim1=-2, dim2=-1)
        if bool((diag > 1e-6 * diag.amax(-1, keepdim=True)).all()):
            Q = torch.linalg.solve_triangular(L.transpose(1, 2), Yf, upper=True, left=False).reshape(shape)
            return Q * mask if mask is not None else Q
    return _retract_householder(Y, mask)


def _retract_householder(Y: Tensor, mask: Tensor | None) -> Tensor:
    """Householder QR with sign fix; always orthonormal, also for rank-deficient Y."""
    Q, R = torch.linalg.qr(Y)
    s = torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))
    s = torch.where(s == 0, torch.ones_like(s), s)
    Q = Q * s.unsqueeze(-2)
    return Q * mask if mask is not None else Q


def retract_polar(Y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Polar retraction ``Y (Y^T Y)^{-1/2}``; padding handled by an identity block (spec section 5)."""
    fill: Tensor | float
    if mask is not None:
        Y = Y * mask
        # (Y^T Y) is block-diagonal [A^T A, 0; 0, 0]; filling the zero block with I leaves the live
        # columns' polar factor unchanged and keeps the padded columns zero.
        fill = torch.diag_embed(1.0 - mask.squeeze(-2))
    else:
        fill = 0.0
    M = Y.transpose(-1, -2) @ Y + fill
    lam, V = torch.linalg.eigh(M)
    lam = lam.clamp_min(torch.finfo(Y.dtype).tiny ** 0.5)
    inv_sqrt = (V * lam.rsqrt().unsqueeze(-2)) @ V.transpose(-1, -2)
    out = Y @ inv_sqrt
    return out * mask if mask is not None else out


def retract(Y: Tensor, mask: Tensor | None, method: str = "qr") -> Tensor:
    """Dispatch to :func:`retract_qr` or :func:`retract_polar`."""
    if method == "qr":
        return retract_qr(Y, mask)
    if method == "polar":
        return retract_polar(Y, mask)
    raise ValueError(f"retraction: expected one of {RETRACTIONS}, got {method!r}")


def random_stiefel(
    shape: Sequence[int], dims: Sequence[int], generator: torch.Generator, dtype: torch.dtype, device=None
) -> Tensor:
    """Uniform random padded bases of shape ``(*shape, K, n, dmax)`` (QR of a Gaussian, masked)."""
    G = torch.randn(tuple(shape), generator=generator, dtype=dtype)
    G = G.to(device)
    mask = column_mask(dims, G.shape[-1], like=G)
    return retract_qr(G, mask)


@dataclass
class StiefelOptimizer:
    """Riemannian Adam (Becigneul-Ganea, elementwise second moment) or SGD on padded Stiefel bases.

    ``step(U, egrad, lr)`` takes the Euclidean gradient and returns the retracted new point; the
    first moment is transported to the new tangent space by projection (spec section 5).
    """

    dims: Sequence[int]
    method: str = "adam"
    retraction: str = "qr"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-12
    m: Tensor | None = field(default=None, repr=False)
    v: Tensor | None = field(default=None, repr=False)
    t: int = 0

    def __post_init__(self) -> None:
        if self.method not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.method!r}")
        if self.retraction not in RETRACTIONS:
            raise ValueError(f"retraction: expected one of {RETRACTIONS}, got {self.retraction!r}")

    def step(self, U: Tensor, egrad: Tensor, lr: float | Tensor) -> tuple[Tensor, Tensor]:
        """One step; returns (new U, Riemannian gradient at the old U)."""
        mask = column_mask(self.dims, U.shape[-1], like=U)
        rgrad = tangent_project(U, egrad) * mask
        if self.method == "sgd":
            return retract(U - lr * rgrad, mask, self.retraction), rgrad
        b1, b2 = self.betas
        self.t += 1
        if self.m is None or self.v is None:
            self.m = torch.zeros_like(U)
            self.v = torch.zeros_like(U)
        self.m = b1 * self.m + (1 - b1) * rgrad
        self.v = b2 * self.v + (1 - b2) * rgrad * rgrad
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        direction = tangent_project(U, m_hat / (v_hat.sqrt() + self.eps)) * mask
        U_new = retract(U - lr * direction, mask, self.retraction)
        self.m = tangent_project(U_new, self.m) * mask
        return U_new, rgrad
