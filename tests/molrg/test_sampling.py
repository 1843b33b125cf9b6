"""Samplers driven by the exact MoLRG denoiser land on the true subspaces (spec section 8)."""

import pytest
import torch
from scipy import stats

from molrg.analysis.metrics import assign_components
from molrg.bases import pad_bases
from molrg.data.synthetic import make_molrg
from molrg.lowrank.analytic import exact_denoiser
from molrg.sampling.samplers import initial_noise, sample, sample_ddim, sample_heun
from molrg.sampling.schedules import get_sigmas_karras

PI = [0.7, 0.3]


@pytest.fixture(scope="module")
def truth():
    return make_molrg(24, [3, 5], n_samples=2, weights=PI, seed=0)


def _residual(x, bases):
    U = pad_bases(bases)
    proj = torch.einsum("mn,knd->mkd", x, U).square().sum(-1)  # ||U_k^T x||^2
    res = (x.square().sum(-1, keepdim=True) - proj).clamp_min(0).min(-1).values.sqrt()
    return res / x.norm(dim=-1)


@pytest.mark.parametrize(
    ("sampler", "steps", "bound"), [("heun", 18, 1e-2), ("ddim", 40, 1e-2), ("sde", 40, 5e-2)]
)
def test_samples_lie_on_true_subspaces_with_frequencies_pi(truth, sampler, steps, bound):
    D = exact_denoiser(truth.bases, truth.weights)
    x = sample(D, 600, 24, sampler=sampler, steps=steps, seed=1)
    assert x.shape == (600, 24) and x.dtype == torch.float64 and torch.isfinite(x).all()
    assert _residual(x, truth.bases).median() < bound
    counts = torch.bincount(assign_components(x, pad_bases(truth.bases)), minlength=2).numpy()
    assert stats.chisquare(counts, [600 * p for p in PI]).pvalue > 1e-3
    # the in-subspace coefficients are roughly standard normal
    k = assign_components(x, pad_bases(truth.bases))
    a = x[k == 0] @ truth.bases[0]
    assert (a.var(0) - 1).abs().max() < 0.35


def test_per_sample_seeds_do_not_depend_on_batch(truth):
    D = exact_denoiser(truth.bases, truth.weights)
    for sampler in ("heun", "sde"):
        few = sample(D, 3, 24, sampler=sampler, steps=6, seed=4)
        many = sample(D, 10, 24, sampler=sampler, steps=6, seed=4)
        torch.testing.assert_close(few, many[:3], atol=1e-12, rtol=0)
    torch.testing.assert_close(initial_noise(5, 24, 7)[2:], initial_noise(3, 24, 7, offset=2))
    assert not torch.equal(initial_noise(3, 24, 7), initial_noise(3, 24, 8))


def test_heun_is_more_accurate_than_ddim_and_linear_gaussian_oracle():
    """K = 1: the probability-flow ODE is linear; x(0) = U U^T x(T) / sqrt(1 + T^2) exactly."""
    data = make_molrg(10, [3], n_samples=1, seed=2)
    U = data.bases[0]
    D = exact_denoiser([U])
    x_T = initial_noise(50, 10, 0, sigma_max=80.0)
    # For a Gaussian N(0, P) the ODE solution is the projection scaled by 1/sqrt(1 + sigma^2).
    want = x_T @ U @ U.T / (1 + 80.0**2) ** 0.5
    sig = get_sigmas_karras(60)
    err_heun = (sample_heun(D, x_T, sig) - want).norm() / want.norm()
    err_ddim = (sample_ddim(D, x_T, sig) - want).norm() / want.norm()
    assert err_heun < 1e-2 and 5 * err_heun < err_ddim < 0.1  # second order vs first order


def test_sample_validation(truth):
    D = exact_denoiser(truth.bases)
    with pytest.raises(ValueError, match="sampler"):
        sample(D, 2, 24, sampler="dpm")
    with pytest.raises(ValueError, match="steps"):
        sample(D, 2, 24, steps=0)
    with pytest.raises(ValueError, match="n_samples"):
        sample(D, 0, 24)


def test_callback_sees_every_step(truth):
    seen = []
    sample(exact_denoiser(truth.bases), 2, 24, steps=5, callback=lambda info: seen.append(int(info["i"])))
    assert seen == list(range(5))
