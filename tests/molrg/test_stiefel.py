"""Stiefel tools: Riemannian gradient vs finite differences, retractions keep orthonormality and padding."""

import pytest
import torch

from molrg.bases import column_mask
from molrg.lowrank.stiefel import StiefelOptimizer, random_stiefel, retract, tangent_project

DIMS = [3, 2]


def _point(seed: int = 0) -> torch.Tensor:
    return random_stiefel((4, 2, 7, 3), DIMS, torch.Generator().manual_seed(seed), torch.float64)


def test_random_stiefel_orthonormal_and_padded():
    U = _point()
    mask = column_mask(DIMS, 3, like=U)
    gram = U.transpose(-1, -2) @ U
    assert torch.allclose(gram, torch.diag_embed(mask.squeeze(-2)).expand_as(gram), atol=1e-12)
    assert (U[:, 1, :, 2] == 0).all()


def test_riemannian_gradient_matches_finite_difference():
    g = torch.Generator().manual_seed(1)
    U = _point(1)
    A = torch.randn(7, 7, generator=g, dtype=torch.float64)
    C = A @ A.T

    def f(V: torch.Tensor) -> torch.Tensor:
        return -torch.einsum("...knd,nm,...kmd->...", V, C, V)

    egrad = -2 * C @ U
    rgrad = tangent_project(U, egrad)
    mask = column_mask(DIMS, 3, like=U)
    xi = tangent_project(U, torch.randn(U.shape, generator=g, dtype=torch.float64)) * mask
    for method in ("qr", "polar"):
        h = 1e-6
        fd = (f(retract(U + h * xi, mask, method)) - f(retract(U - h * xi, mask, method))) / (2 * h)
        inner = (rgrad * xi).sum((-1, -2, -3))
        assert torch.allclose(fd, inner, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["qr", "polar"])
def test_retraction_keeps_orthonormality_and_mask(method):
    g = torch.Generator().manual_seed(2)
    U = _point(2)
    mask = column_mask(DIMS, 3, like=U)
    Y = U + 0.3 * torch.randn(U.shape, generator=g, dtype=torch.float64)
    V = retract(Y, mask, method)
    gram = V.transpose(-1, -2) @ V
    assert torch.allclose(gram, torch.diag_embed(mask.squeeze(-2)).expand_as(gram), atol=1e-10)
    assert (V[:, 1, :, 2] == 0).all()
    if method == "qr":  # sign fix: the first column follows the first column of Y
        assert ((V[..., 0] * Y[..., 0]).sum(-1) > 0).all()


def test_rank_deficient_qr_falls_back_to_orthonormal():
    Y = torch.zeros(1, 1, 5, 2, dtype=torch.float64)
    Y[0, 0, 0, 0] = 1.0
    V = retract(Y, None, "qr")
    assert torch.allclose(V.transpose(-1, -2) @ V, torch.eye(2, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("method", ["adam", "sgd"])
def test_optimizer_decreases_rayleigh_loss(method):
    g = torch.Generator().manual_seed(3)
    A = torch.randn(7, 7, generator=g, dtype=torch.float64)
    C = A @ A.T
    U = _point(3)
    opt = StiefelOptimizer(DIMS, method, "qr")
    f0 = -torch.einsum("...nd,nm,...md->...", U, C, U)
    for _ in range(200):
        U, _ = opt.step(U, -2 * C @ U, 0.01 if method == "adam" else 0.002)
    f1 = -torch.einsum("...nd,nm,...md->...", U, C, U)
    assert (f1 < f0).all()
    with pytest.raises(ValueError, match="optimizer"):
        StiefelOptimizer(DIMS, "lbfgs")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("worst", [1e3, 1e6])
def test_cholesky_qr_falls_back_per_matrix_when_ill_conditioned(dtype, worst):
    from molrg.lowrank.stiefel import orthonormality_tol, retract_qr

    g = torch.Generator().manual_seed(0)
    Q0 = torch.linalg.qr(torch.randn(4, 30, 5, generator=g, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))[0]
    conds = torch.tensor([1.0, 1e3, 3.0, worst], dtype=torch.float64)  # two fine, two ill-conditioned
    S = torch.stack([torch.logspace(0, -float(torch.log10(c)), 5, dtype=torch.float64) for c in conds])
    Y = ((Q0 * S[:, None, :]) @ V.T).to(dtype)
    Q = retract_qr(Y)
    err = (Q.transpose(-1, -2) @ Q - torch.eye(5, dtype=dtype)).abs().amax((-1, -2))
    assert bool((err <= orthonormality_tol(dtype, 5)).all()), err  # was 5e-2 in float32 at cond 1e3
    ref, R = torch.linalg.qr(Y.to(torch.float64))
    ref = ref * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert torch.allclose(Q[[0, 2]].to(torch.float64), ref[[0, 2]], atol=tol)  # the same sign-fixed Q
