"""MoLRG data generation (spec section 1)."""

import pytest
import torch

from molrg.bases import unpad_bases
from molrg.data.synthetic import component_counts, make_molrg, sample_molrg_batch, validate_spec

F64 = torch.float64


def test_shapes_orthonormal_and_on_subspaces():
    data = make_molrg(48, [3, 5, 2], n_samples=20, seed=7)
    assert data.X.shape == (20, 48) and data.labels.dtype == torch.int64 and data.X.dtype == F64
    U = torch.cat(data.bases, 1)
    torch.testing.assert_close(U.T @ U, torch.eye(10, dtype=F64), atol=1e-12, rtol=0)
    for k, B in enumerate(data.bases):
        x = data.X[data.labels == k]
        assert (x - x @ B @ B.T).norm() < 1e-10 * x.norm()


def test_non_orthogonal_bases_are_orthonormal_but_not_mutually_orthogonal():
    data = make_molrg(10, [6, 6], n_samples=5, orthogonal=False, seed=0)
    for B in data.bases:
        torch.testing.assert_close(B.T @ B, torch.eye(6, dtype=F64), atol=1e-12, rtol=0)
    assert (data.bases[0].T @ data.bases[1]).norm() > 0.1


def test_balanced_counts_from_weights_and_iid_frequencies():
    assert component_counts(10, [0.7, 0.3]) == [7, 3]
    assert component_counts(10, [1 / 3] * 3) == [4, 3, 3]
    assert sum(component_counts(17, [0.15, 0.35, 0.5])) == 17
    data = make_molrg(20, [2, 3], n_samples=11, weights=[0.7, 0.3], seed=1)
    assert torch.bincount(data.labels).tolist() == [8, 3]
    data = make_molrg(20, [2, 3], samples_per_component=[4, 6], seed=1)
    assert torch.bincount(data.labels).tolist() == [4, 6]
    torch.testing.assert_close(data.weights, torch.tensor([0.4, 0.6], dtype=F64))
    data = make_molrg(20, [2, 3], n_samples=20_000, weights=[0.7, 0.3], balanced=False, seed=1)
    freq = torch.bincount(data.labels).double() / 20_000
    assert abs(freq[0] - 0.7) < 0.02


def test_noise_is_added_to_the_same_clean_data():
    clean = make_molrg(30, [4], n_samples=5000, seed=3)
    noisy = make_molrg(30, [4], n_samples=5000, seed=3, noise_std=0.1)
    resid = noisy.X - clean.X
    assert abs(resid.std() - 0.1) < 0.005
    assert torch.equal(clean.labels, noisy.labels)


def test_seed_reproducible_and_dtype_device_independent():
    a = make_molrg(16, [2, 3], n_samples=9, seed=11)
    b = make_molrg(16, [2, 3], n_samples=9, seed=11, dtype=torch.float32)
    c = make_molrg(16, [2, 3], n_samples=9, seed=12)
    assert torch.equal(a.X.float(), b.X) and not torch.equal(a.X, c.X)


def test_batch_trial_equals_single_draw():
    seeds = [5, 0, 123]
    batch = sample_molrg_batch(seeds, 20, [2, 4], samples_per_component=3, weights=None, noise_std=0.01)
    assert batch.X.shape == (3, 6, 20) and batch.bases.shape == (3, 2, 20, 4)
    assert torch.equal(batch.bases[:, 0, :, 2:], torch.zeros(3, 20, 2, dtype=F64))
    for b, s in enumerate(seeds):
        one = make_molrg(20, [2, 4], samples_per_component=3, noise_std=0.01, seed=s)
        assert torch.equal(batch.X[b], one.X) and torch.equal(batch.labels[b], one.labels)
        for U, V in zip(unpad_bases(batch.bases[b], [2, 4]), one.bases, strict=True):
            assert torch.equal(U, V)
    # a trial does not depend on which batch it was generated in
    assert torch.equal(sample_molrg_batch([123], 20, [2, 4], samples_per_component=3, noise_std=0.01).X[0], batch.X[2])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(dims=[]), "dims"),
        (dict(dims=[0, 2]), r"dims\[0\]"),
        (dict(dims=[2, 48]), r"dims\[1\]=48 must be < ambient_dim=48"),
        (dict(dims=[30, 30]), r"sum\(dims\)=60 exceeds ambient_dim=48.*orthogonal=false"),
        (dict(weights=[0.5, 0.2, 0.3]), "weights"),
        (dict(weights=[1.2, -0.2]), "weights"),
        (dict(weights=[1e308, 1e308]), "weights.*overflows"),
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=None), "exactly one of n_samples and samples_per_component"),
        (dict(samples_per_component=3), "exactly one of n_samples and samples_per_component"),
        (dict(noise_std=-0.1), "noise_std"),
    ],
)
def test_validation_errors_name_the_field(kwargs, match):
    spec = dict(ambient_dim=48, dims=[3, 3], n_samples=10) | kwargs
    with pytest.raises(ValueError, match=match):
        validate_spec(**spec)
    with pytest.raises(ValueError, match=match):
        make_molrg(**spec)


def test_samples_per_component_validation():
    with pytest.raises(ValueError, match="samples_per_component"):
        make_molrg(10, [2, 2], samples_per_component=[1, 2, 3])
    with pytest.raises(ValueError, match="samples_per_component"):
        make_molrg(10, [2, 2], samples_per_component=[0, 0])
    assert make_molrg(10, [6, 6], n_samples=3, orthogonal=False).X.shape == (3, 10)
