"""The empirical optimal denoiser against a direct computation; references as models (section 12)."""

import pytest
import torch

from molrg.analysis.diagnostics import memorisation_ratio
from molrg.data.synthetic import make_molrg
from molrg.lowrank.analytic import exact_denoiser
from molrg.neural.references import (
    EmpiricalDiffusion,
    ExactPosterior,
    empirical_denoiser,
    empirical_posterior_mean,
)


def _direct(x, X, sigma):
    """softmax_i(-||x - x_i||^2 / (2 sigma^2)) x_i, written out."""
    d2 = ((x[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    w = torch.softmax(-d2 / (2 * sigma[:, None] ** 2), dim=-1)
    return w @ X


@pytest.mark.parametrize("block", [1 << 22, 7, 1])
def test_empirical_denoiser_matches_the_direct_formula(block):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(23, 5, generator=g, dtype=torch.float64)
    x = torch.randn(17, 5, generator=g, dtype=torch.float64) * 2
    for s in [0.05, 0.3, 1.0, 10.0]:
        sigma = torch.full((17,), s, dtype=torch.float64)
        torch.testing.assert_close(empirical_posterior_mean(x, X, s, block), _direct(x, X, sigma), rtol=1e-10, atol=1e-12)
    sigma = torch.logspace(-1, 1, 17, dtype=torch.float64)  # a sigma per query
    torch.testing.assert_close(empirical_denoiser(X, block)(x, sigma), _direct(x, X, sigma), rtol=1e-10, atol=1e-12)


def test_empirical_denoiser_limits():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(10, 4, generator=g, dtype=torch.float64)
    x = X[[3, 7]] + 1e-3 * torch.randn(2, 4, generator=g, dtype=torch.float64)
    D = empirical_denoiser(X)
    torch.testing.assert_close(D(x, 1e-3), X[[3, 7]], rtol=0, atol=1e-12)  # nearest training point, no overflow
    torch.testing.assert_close(D(x, 1e4), X.mean(0).expand(2, 4), rtol=1e-6, atol=1e-6)  # the data mean
    assert D(x.float(), 0.5).dtype == torch.float32


def test_empirical_model_samples_copy_training_points():
    data = make_molrg(8, [2, 2], samples_per_component=5, seed=2)
    model = EmpiricalDiffusion().fit(data.X)
    S = model.sample(64, seed=0)
    ratio = memorisation_ratio(S, data.X)
    assert (ratio < 1 / 3).double().mean() == 1.0
    assert torch.cdist(S, data.X).min(1).values.max() < 1e-3
    again = EmpiricalDiffusion.from_state_dict(model.state_dict())
    torch.testing.assert_close(again.sample(8, seed=0), S[:8])
    torch.testing.assert_close(model.sample(64, seed=0, sampler="ddim")[:4], model.sample(4, seed=0, sampler="ddim"))


def test_exact_posterior_model_is_the_analytic_denoiser():
    data = make_molrg(12, [3, 2], samples_per_component=4, seed=3)
    model = ExactPosterior(data.bases).fit(data.X)
    x = torch.randn(6, 12, dtype=torch.float64)
    torch.testing.assert_close(model.denoise(x, 0.7), exact_denoiser(data.bases)(x, 0.7))
    assert model.sample(5, seed=1, sampler="sde").shape == (5, 12)
