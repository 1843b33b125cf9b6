"""The numpy MoLRG generator: structure, determinism, counts."""

import io

import numpy as np
import pytest

from service.synthetic import largest_remainder, make_molrg, npz_bytes


def test_orthogonal_bases_and_data_on_subspaces() -> None:
    d = make_molrg(48, [4, 3, 5], n_samples=30, seed=3)
    assert d.X.shape == (30, 48) and d.X.dtype == np.float64 and d.labels.dtype == np.int64
    U = np.concatenate(d.bases, axis=1)
    np.testing.assert_allclose(U.T @ U, np.eye(12), atol=1e-12)  # orthonormal AND mutually orthogonal
    for k, U_k in enumerate(d.bases):
        Xk = d.X[d.labels == k]
        np.testing.assert_allclose(Xk - Xk @ U_k @ U_k.T, 0, atol=1e-10)
    assert d.counts == [10, 10, 10]


def test_deterministic_per_seed() -> None:
    a, b, c = (make_molrg(10, [2, 2], n_samples=8, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.allclose(a.X, c.X)


def test_largest_remainder() -> None:
    assert largest_remainder(10, np.array([1 / 3] * 3)) == [4, 3, 3]
    assert largest_remainder(7, np.array([0.5, 0.25, 0.25])) == [3, 2, 2]
    assert sum(largest_remainder(101, np.array([0.2, 0.3, 0.5]))) == 101


def test_weights_iid_samples_per_component_and_noise() -> None:
    d = make_molrg(20, [2, 2], n_samples=1000, weights=[3, 1], balanced=False, seed=0)
    assert abs(d.counts[0] / 1000 - 0.75) < 0.05 and sum(d.counts) == 1000
    np.testing.assert_allclose(d.weights, [0.75, 0.25])
    d = make_molrg(20, [2, 3], samples_per_component=[4, 6], seed=0)
    assert d.counts == [4, 6] and d.X.shape == (10, 20)
    noisy = make_molrg(20, [2], n_samples=50, noise_std=0.1, seed=0)
    resid = noisy.X - noisy.X @ noisy.bases[0] @ noisy.bases[0].T
    assert 0.05 < resid.std() < 0.15


def test_independent_subspaces_may_overlap() -> None:
    d = make_molrg(6, [4, 4], n_samples=10, orthogonal=False, seed=0)
    for U in d.bases:
        np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-12)
    assert np.abs(d.bases[0].T @ d.bases[1]).max() > 0.1


def test_npz_has_U_k() -> None:
    d = make_molrg(8, [2, 1], n_samples=4, seed=0)
    with np.load(io.BytesIO(npz_bytes(d.bases))) as z:
        assert sorted(z.files) == ["U_0", "U_1"] and z["U_1"].shape == (8, 1)


def test_requires_a_size() -> None:
    with pytest.raises(ValueError):
        make_molrg(8, [2], seed=0)
