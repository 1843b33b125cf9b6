"""Exact MoLRG posterior mean (spec section 3) against independent oracles."""

import math

import pytest
import torch

from molrg.bases import pad_bases
from molrg.data.synthetic import make_molrg
from molrg.lowrank.analytic import exact_denoiser, posterior_mean, responsibilities, score
from molrg.sampling.schedules import VPSchedule

F64 = torch.float64


def bayes_oracle(x_t, bases, pi, s, g):
    """Generic Gaussian-mixture Bayes: x_t ~ sum_k pi_k N(0, s^2 U_k U_k^T + g^2 I)."""
    n = x_t.shape[-1]
    logp, means = [], []
    for U, p in zip(bases, pi, strict=True):
        Sigma = s**2 * U @ U.T + g**2 * torch.eye(n, dtype=F64)
        mvn = torch.distributions.MultivariateNormal(torch.zeros(n, dtype=F64), covariance_matrix=Sigma)
        logp.append(math.log(p) + mvn.log_prob(x_t))
        # E[x0 | x_t, k] = Cov(x0, x_t) Sigma^-1 x_t with Cov(x0, x_t) = s U U^T
        means.append((s * U @ U.T @ torch.linalg.solve(Sigma, x_t.T)).T)
    post = torch.softmax(torch.stack(logp, -1), -1)
    return (post[..., None] * torch.stack(means, 1)).sum(1), post


@pytest.mark.parametrize("convention", ["vp", "ve"])
@pytest.mark.parametrize("level", [0.05, 0.4, 0.9])
def test_posterior_mean_matches_gaussian_mixture_bayes(convention, level):
    n, dims, pi = 12, [2, 4, 3], [0.5, 0.2, 0.3]
    data = make_molrg(n, dims, n_samples=30, weights=pi, orthogonal=False, seed=1)
    if convention == "vp":
        vp = VPSchedule()
        s, g = float(vp.s(level)), float(vp.gamma(level))
    else:
        s, g = 1.0, 3.0 * level
    gen = torch.Generator().manual_seed(5)
    x_t = s * data.X + g * torch.randn(data.X.shape, generator=gen, dtype=F64)
    want, post = bayes_oracle(x_t, data.bases, pi, s, g)
    U = pad_bases(data.bases)
    log_pi = torch.tensor(pi, dtype=F64).log()
    got = posterior_mean(x_t, U, dims, log_pi, s, g)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(responsibilities(x_t, U, dims, log_pi, s, g), post, atol=1e-10, rtol=1e-10)
    # score = grad log p_t, checked against autograd of the mixture log-density
    x = x_t[:4].clone().requires_grad_(True)
    logp = torch.stack(
        [
            math.log(p)
            + torch.distributions.MultivariateNormal(
                torch.zeros(n, dtype=F64), covariance_matrix=s**2 * B @ B.T + g**2 * torch.eye(n, dtype=F64)
            ).log_prob(x)
            for B, p in zip(data.bases, pi, strict=True)
        ],
        -1,
    )
    (grad,) = torch.autograd.grad(torch.logsumexp(logp, -1).sum(), x)
    torch.testing.assert_close(score(x_t[:4], U, dims, log_pi, s, g), grad, atol=1e-9, rtol=1e-9)


def test_broadcasting_over_batch_and_per_sample_noise_levels():
    n, dims = 10, [2, 3]
    U = torch.stack([pad_bases(make_molrg(n, dims, n_samples=2, seed=s).bases) for s in range(3)])  # (3,2,n,3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, n, generator=gen, dtype=F64)
    sig = torch.rand(3, 7, generator=gen, dtype=F64) + 0.1
    log_pi = torch.tensor([[0.3, 0.7]], dtype=F64).log().expand(3, 2)
    got = posterior_mean(x, U, dims, log_pi, 1.0, sig)
    for b in range(3):
        for m in (0, 6):
            one = posterior_mean(x[b, m : m + 1], U[b], dims, log_pi[b], 1.0, float(sig[b, m]))
            torch.testing.assert_close(got[b, m : m + 1], one, atol=1e-12, rtol=1e-12)


def test_key_identity_matches_monte_carlo():
    """E_eps ||c_t P (s_t x + gamma_t eps) - x||^2 = ||x||^2 - (2a - a^2)||U^T x||^2 + c_t^2 gamma_t^2 d."""
    n, d = 15, 4
    gen = torch.Generator().manual_seed(3)
    U = torch.linalg.qr(torch.randn(n, d, generator=gen, dtype=F64))[0]
    x = torch.randn(n, generator=gen, dtype=F64)
    vp = VPSchedule()
    for t in (0.1, 0.5):
        s, g = float(vp.s(t)), float(vp.gamma(t))
        c = s / (s**2 + g**2)
        a = c * s
        eps = torch.randn(200_000, n, generator=gen, dtype=F64)
        mc = ((c * (s * x + g * eps) @ U @ U.T - x) ** 2).sum(-1)
        closed = x @ x - (2 * a - a**2) * (U.T @ x).square().sum() + c**2 * g**2 * d
        assert abs(mc.mean() - closed) < 4 * mc.std() / math.sqrt(len(mc))


def test_posterior_mean_matches_monte_carlo_conditional_expectation():
    """E[x0 | x_t] by importance weighting of prior draws (independent of the closed form)."""
    n, dims, pi = 6, [1, 2], [0.6, 0.4]
    data = make_molrg(n, dims, n_samples=400_000, weights=pi, orthogonal=False, balanced=False, seed=2)
    g = 0.8
    gen = torch.Generator().manual_seed(9)
    x0_query = make_molrg(n, dims, n_samples=3, weights=pi, orthogonal=False, seed=2).X
    x_t = x0_query + g * torch.randn(x0_query.shape, generator=gen, dtype=F64)
    logw = -((x_t[:, None, :] - data.X[None]) ** 2).sum(-1) / (2 * g**2)  # (3, Nmc)
    w = torch.softmax(logw, -1)
    mc = w @ data.X
    got = exact_denoiser(data.bases, pi)(x_t, g)
    assert (got - mc).norm(dim=-1).max() < 0.05


def test_differentiable_in_float32():
    n, dims = 8, [2, 3]
    U = pad_bases(make_molrg(n, dims, n_samples=2, seed=0).bases).float().requires_grad_(True)
    x = torch.randn(5, n, generator=torch.Generator().manual_seed(0))
    out = posterior_mean(x, U, dims, None, 0.9, torch.full((5,), 0.3))
    assert out.dtype == torch.float32
    out.square().sum().backward()
    assert U.grad is not None and torch.isfinite(U.grad).all() and U.grad.abs().sum() > 0


def test_exact_denoiser_limits():
    data = make_molrg(10, [2, 3], n_samples=6, seed=4)
    D = exact_denoiser(data.bases)
    # At tiny noise a clean point is returned unchanged; at huge noise the output shrinks to 0.
    torch.testing.assert_close(D(data.X, 1e-6), data.X, atol=1e-8, rtol=0)
    assert D(data.X, 0.0).isfinite().all()
    assert D(data.X * 1e3, 1e6).norm() < 1e-2
    assert D(data.X.float(), torch.full((6,), 0.5)).dtype == torch.float32
