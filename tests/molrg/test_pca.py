"""PCA (K = 1 closed form, spec section 4): recovery iff N >= d on noiseless data."""

import torch

from molrg.analysis.metrics import matched_errors
from molrg.data.synthetic import sample_molrg_batch
from molrg.lowrank.fitting import fit_batched
from molrg.lowrank.pca import pca_bases


def test_pca_recovers_with_enough_samples_and_fails_below_d():
    d = 4
    ok = sample_molrg_batch([0, 1, 2], 12, [d], n_samples=d)
    e_ok = matched_errors(pca_bases(ok.X, d), ok.bases)
    assert (e_ok < 1e-8).all()
    few = sample_molrg_batch([3, 4, 5], 12, [d], n_samples=d - 2)
    e_few = matched_errors(pca_bases(few.X, d), few.bases)
    assert (e_few > 1.0).all()


def test_pca_padding_rows_change_nothing():
    b = sample_molrg_batch([7], 10, [3], n_samples=5)
    padded = torch.cat([b.X, torch.zeros(1, 4, 10, dtype=b.X.dtype)], 1)
    assert torch.allclose(pca_bases(b.X, 3), pca_bases(padded, 3), atol=1e-12)


def test_fit_batched_pca_rejects_k2():
    b = sample_molrg_batch([0], 10, [2, 2], samples_per_component=3)
    try:
        fit_batched(b.X, [2, 2], "pca")
    except ValueError as err:
        assert "pca" in str(err)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")
