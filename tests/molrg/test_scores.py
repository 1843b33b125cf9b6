"""Scores of samples (spec section 13): calibration on the two references, reproducibility."""

import pytest
import torch

from molrg.analysis.diagnostics import off_subspace_residual
from molrg.analysis.jacobian import learned_subspace_report, learned_subspaces
from molrg.analysis.metrics import recovery_error
from molrg.analysis.scores import (
    ON_SUPPORT_THRESHOLD,
    generalisation_score,
    memorised_mask,
    on_support_mask,
    reproducibility,
    sample_scores,
)
from molrg.bases import pad_bases
from molrg.data.synthetic import make_molrg
from molrg.lowrank.analytic import exact_denoiser
from molrg.neural.references import empirical_denoiser
from molrg.sampling.samplers import sample

SETTINGS = [(48, [4, 4], 4), (48, [4, 4], 64), (8, [2, 2], 2), (16, [3, 2, 1], 6)]


@pytest.mark.parametrize("n,dims,nk", SETTINGS)
def test_threshold_calibration_on_the_two_references(n, dims, nk):
    data = make_molrg(n, dims, samples_per_component=nk, seed=n + nk)
    for sampler in ["heun", "ddim", "sde"]:
        exact = sample(exact_denoiser(data.bases), 120, n, sampler=sampler, seed=1)
        resid, _ = off_subspace_residual(exact, pad_bases(data.bases))
        assert resid.max() < 1e-2  # the calibration quoted in molrg/analysis/scores.py
        assert on_support_mask(exact, data.bases).double().mean() >= 0.99
        emp = sample(empirical_denoiser(data.X), 120, n, sampler=sampler, seed=1)
        s = sample_scores(emp, data.X, data.bases)
        assert s["memorisation"]["memorised_fraction"] >= 0.99
        assert s["memorisation"]["generalisation_score"] <= 0.01
        assert s["true"]["on_support_fraction"] >= 0.99  # training points lie on the true subspaces
    # isotropic Gaussian points are off support at every setting (sqrt(1 - d/n) >> threshold)
    iso = torch.randn(500, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert on_support_mask(iso, data.bases).double().mean() == 0.0


def test_exact_posterior_generalises_when_the_training_set_is_large():
    data = make_molrg(48, [4, 4], samples_per_component=64, seed=5)
    exact = sample(exact_denoiser(data.bases), 300, 48, seed=2)
    assert generalisation_score(exact, data.X, data.bases) >= 0.95
    assert generalisation_score(exact, data.X) >= 0.95  # without truth: 1 - memorised


def test_scores_are_consistent():
    data = make_molrg(8, [2, 2], samples_per_component=10, seed=1)
    half_copies = torch.cat([data.X[:10] + 1e-4, torch.randn(10, 8, dtype=torch.float64)])
    mem = memorised_mask(half_copies, data.X)
    assert mem[:10].all() and mem.double().mean() == pytest.approx(0.5, abs=0.1)
    s = sample_scores(half_copies, data.X, data.bases)
    assert s["memorisation"]["generalisation_score"] == 0.0  # copies are memorised, noise is off support
    assert s["true"]["on_support_threshold"] == ON_SUPPORT_THRESHOLD
    no_truth = sample_scores(half_copies, data.X)
    assert "true" not in no_truth
    assert no_truth["memorisation"]["generalisation_score"] == 1 - no_truth["memorisation"]["memorised_fraction"]
    assert sample_scores(half_copies) == {}


def test_reproducibility():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(50, 12, generator=g, dtype=torch.float64)
    same = reproducibility(a, a + 0.01 * torch.randn(50, 12, generator=g, dtype=torch.float64))
    assert same["reproducible_fraction"] == 1.0 and same["cosine_median"] > 0.99 and same["n_pairs"] == 50
    other = reproducibility(a, torch.randn(50, 12, generator=g, dtype=torch.float64))
    assert other["reproducible_fraction"] < 0.05 and abs(other["cosine_median"]) < 0.4
    assert other["threshold"] == 0.9
    with pytest.raises(ValueError):
        reproducibility(a, a[:3])


def test_learned_subspaces_from_the_jacobian():
    data = make_molrg(16, [3, 2], samples_per_component=20, seed=4)
    learned = learned_subspaces(exact_denoiser(data.bases), data.X, data.labels, data.dims, sigma=0.01)
    assert [tuple(B.shape) for B in learned] == [(16, 3), (16, 2)]
    assert recovery_error(learned, data.bases) < 1e-10
    # at the default sigma = 0.05 the soft weights of a few points near the other subspace add 3e-3
    assert recovery_error(learned_subspaces(exact_denoiser(data.bases), data.X, data.labels, data.dims),
                          data.bases) < 0.01
    # a denoiser that knows nothing (the identity map) gives no subspace
    report = learned_subspace_report(lambda x, s: 0.5 * x, data.X, data.labels, data.dims, data.bases)
    assert report["recovery"]["max_error"] > 1.0
    good = learned_subspace_report(exact_denoiser(data.bases), data.X, data.labels, data.dims, data.bases, 0.01)
    assert good["recovery"]["max_error"] < 1e-10 and len(good["bases"][0]) == 16
