"""Exact expected diffusion loss (key identity, spec section 4) against Monte Carlo and autograd."""

import math

import pytest
import torch

from molrg.bases import column_mask
from molrg.lowrank.losses import (
    hardmax_loss_and_grad,
    key_identity_loss,
    loss_coefficients,
    softmax_mc_loss,
    time_quadrature,
)
from molrg.lowrank.stiefel import random_stiefel


def test_key_identity_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    n, d = 6, 2
    U = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))[0]
    x = torch.randn(3, n, generator=g, dtype=torch.float64)
    s_t, gamma_t = 0.8, 0.6
    c = s_t / (s_t**2 + gamma_t**2)
    eps = torch.randn(200_000, 1, n, generator=g, dtype=torch.float64)
    x_t = s_t * x + gamma_t * eps
    mc = ((c * x_t @ U @ U.T - x) ** 2).sum(-1).mean(0)
    exact = key_identity_loss(U, x, s_t, gamma_t)
    assert torch.allclose(mc, exact, rtol=5e-3)


@pytest.mark.parametrize("schedule", ["vp", "ve", "edm"])
def test_quadrature_is_a_probability_average(schedule):
    s, gamma, w = time_quadrature(schedule, 64, "unit")
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-10)
    coef = loss_coefficients(schedule)
    assert coef.kappa > 0 and coef.D > 0


def test_exact_loss_matches_monte_carlo_over_eps_and_t():
    g = torch.Generator().manual_seed(1)
    n, d, N = 5, 2, 4
    U = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))[0]
    X = torch.randn(N, n, generator=g, dtype=torch.float64)
    coef = loss_coefficients("edm")
    exact = hardmax_loss_and_grad(U[None, None], X[None], [d], coef, torch.full((1, N), 1 / N, dtype=torch.float64))[0]
    M = 400_000
    sigma = torch.exp(-1.2 + 1.2 * torch.randn(M, generator=g, dtype=torch.float64))
    i = torch.randint(0, N, (M,), generator=g)
    eps = torch.randn(M, n, generator=g, dtype=torch.float64)
    x_t = X[i] + sigma[:, None] * eps
    c = 1 / (1 + sigma**2)
    mc = ((c[:, None] * x_t @ U @ U.T - X[i]) ** 2).sum(-1).mean()
    assert torch.allclose(exact[0], mc, rtol=1e-2)


def test_hardmax_gradient_matches_autograd():
    g = torch.Generator().manual_seed(2)
    dims = [3, 2]
    U = random_stiefel((2, 2, 6, 3), dims, g, torch.float64)
    X = torch.randn(2, 7, 6, generator=g, dtype=torch.float64)
    w = torch.full((2, 7), 1 / 7, dtype=torch.float64)
    coef = loss_coefficients("vp")
    Ug = U.clone().requires_grad_(True)
    loss, egrad, _ = hardmax_loss_and_grad(Ug, X, dims, coef, w)
    (auto,) = torch.autograd.grad(loss.sum(), Ug)
    mask = column_mask(dims, 3, like=U)
    assert torch.allclose(egrad * mask, auto * mask, atol=1e-12)


def test_softmax_mc_loss_shape_and_grad():
    g = torch.Generator().manual_seed(3)
    U = random_stiefel((2, 2, 6, 2), [2, 2], g, torch.float64).requires_grad_(True)
    x0 = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    sigma = torch.rand(2, 5, generator=g, dtype=torch.float64) + 0.1
    eps = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    loss = softmax_mc_loss(U, x0, torch.ones_like(sigma), sigma, eps, [2, 2],
                           torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64)))
    assert loss.shape == (2,)
    loss.sum().backward()
    assert torch.isfinite(U.grad).all()


@pytest.mark.parametrize("schedule", ["vp", "ve", "edm"])
def test_quadrature_nodes_lie_on_the_schedule_classes(schedule):
    # One definition of s_t, gamma_t and p(t): the losses' nodes are those of molrg.sampling.schedules.
    from molrg.sampling.schedules import get_schedule

    sched = get_schedule(schedule)
    s, gamma, w = time_quadrature(schedule, 16, "unit")
    t, wq = sched.quadrature(16)
    torch.testing.assert_close(s, sched.s(t))
    torch.testing.assert_close(gamma, sched.gamma(t))
    torch.testing.assert_close(w, wq)
    # The quadrature averages over the class's own training density: compare with its sample_t.
    draws = sched.sample_t(400_000, torch.Generator().manual_seed(0))
    mc = (sched.gamma(draws) / (sched.s(draws) + sched.gamma(draws))).mean()
    assert abs(float((w * gamma / (s + gamma)).sum()) - float(mc)) < 3e-3


def test_edm_weighting_uses_sigma_data_per_trial():
    a = loss_coefficients("edm", 64, "edm", 0.5)
    b = loss_coefficients("edm", 64, "edm", torch.tensor([0.5, 2.0], dtype=torch.float64))
    assert isinstance(b.kappa, torch.Tensor) and b.kappa.shape == (2,)
    assert float(b.kappa[0]) == pytest.approx(a.kappa) and float(b.kappa[1]) != pytest.approx(a.kappa)


def test_unused_helpers_are_gone():
    import molrg.lowrank.losses as losses

    assert not hasattr(losses, "hardmax_loss") and not hasattr(losses, "component_energies")
