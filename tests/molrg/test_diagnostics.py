"""Sample diagnostics (spec section 8)."""

import json

import pytest
import torch

from molrg.analysis.diagnostics import memorisation_ratio, off_subspace_residual, sample_diagnostics
from molrg.bases import pad_bases
from molrg.data.synthetic import make_molrg


@pytest.fixture(scope="module")
def truth():
    return make_molrg(30, [3, 5], n_samples=3000, weights=[0.7, 0.3], balanced=False, seed=0)


def test_true_samples_score_as_on_subspace_with_right_frequencies(truth):
    train = make_molrg(30, [3, 5], n_samples=40, weights=[0.7, 0.3], seed=0)  # same bases (same seed)
    rep = sample_diagnostics(
        truth.X, truth.bases, truth.weights, true_bases=truth.bases, train_X=train.X, true_weights=[0.7, 0.3]
    )
    json.dumps(rep)
    for block in ("fitted", "true"):
        assert rep[block]["residual"]["max"] < 1e-12
        assert abs(rep[block]["frequencies"][0] - 0.7) < 0.03
        assert rep[block]["frequency_chi2_pvalue"] > 1e-3
        assert all(e < 0.15 for e in rep[block]["covariance_error"])
    # fresh samples are far from being copies of the 40 training points
    assert rep["memorisation"]["generalisation_score"] > 0.9
    assert rep["memorisation"]["ratio_median"] > 0.6


def test_wrong_frequencies_and_off_subspace_samples_are_flagged(truth):
    rep = sample_diagnostics(truth.X, truth.bases, [0.3, 0.7])
    assert rep["fitted"]["frequency_chi2_pvalue"] < 1e-6
    noise = torch.randn(2000, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rep = sample_diagnostics(noise, pad_bases(truth.bases))
    # for isotropic noise ||(I-P)x||^2/||x||^2 ~ Beta((n-d)/2, d/2) with mean (n-d)/n; min over k of two
    assert 0.8 < rep["fitted"]["residual"]["median"] < (1 - 3 / 30) ** 0.5
    assert "true" not in rep and "memorisation" not in rep


def test_memorised_samples_are_detected_and_ratio_matches_brute_force():
    gen = torch.Generator().manual_seed(2)
    train = torch.randn(50, 8, generator=gen, dtype=torch.float64)
    copies = train[:20] + 1e-3 * torch.randn(20, 8, generator=gen, dtype=torch.float64)
    fresh = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    x = torch.cat([copies, fresh])
    ratio = memorisation_ratio(x, train, chunk=7)
    for m in range(x.shape[0]):
        d = sorted(float((x[m] - t).norm()) for t in train)
        assert abs(float(ratio[m]) - d[0] / d[1]) < 1e-12
    U = torch.linalg.qr(torch.randn(8, 2, generator=gen, dtype=torch.float64))[0]
    rep = sample_diagnostics(x, [U], train_X=train)["memorisation"]
    assert rep["memorised_fraction"] >= 20 / 50 and rep["generalisation_score"] <= 30 / 50


def test_residual_and_validation():
    U = torch.eye(6, dtype=torch.float64)[:, :2]
    x = torch.tensor([[3.0, 4.0, 0, 0, 0, 0], [0, 0, 3.0, 4.0, 0, 0], [3.0, 0, 4.0, 0, 0, 0]], dtype=torch.float64)
    res, k = off_subspace_residual(x, U[None])
    torch.testing.assert_close(res, torch.tensor([0.0, 1.0, 0.8], dtype=torch.float64))
    with pytest.raises(ValueError, match="n="):
        sample_diagnostics(x[:, :4], [U])
    with pytest.raises(ValueError, match="train_X"):
        sample_diagnostics(x, [U], train_X=x[:, :4])


def test_memorisation_is_skipped_not_an_error_for_one_training_row():
    import molrg
    from molrg.analysis.diagnostics import sample_diagnostics

    d = molrg.make_molrg(6, [2], n_samples=1, seed=0)
    m = molrg.MoLRGDiffusion(1, [2], method="pca").fit(d.X)
    out = sample_diagnostics(m.sample(5), m.bases_, true_bases=d.bases, train_X=d.X)
    assert "needs >= 2 training rows" in out["memorisation"]["skipped"]
    assert out["true"] and out["fitted"]
