"""The one MoLRG generator (molrg.spec.generate_synthetic) behind the API: structure, determinism, counts,
the same arrays as molrg.make_molrg, and the generation budget."""

import io
from typing import Any

import numpy as np
import pytest

from molrg.spec import SyntheticSpec, component_counts, generate_synthetic, synthetic_peak_bytes
from service.npy import npz_bytes
from tests.service.factories import make_dataset


def gen(**kw: Any) -> Any:
    return generate_synthetic(SyntheticSpec(**kw))


def test_orthogonal_bases_and_data_on_subspaces() -> None:
    d = gen(ambient_dim=48, dims=[4, 3, 5], n_samples=30, seed=3)
    assert d.X.shape == (30, 48) and d.X.dtype == np.float64 and d.labels.dtype == np.int64
    U = np.concatenate(d.bases, axis=1)
    np.testing.assert_allclose(U.T @ U, np.eye(12), atol=1e-12)  # orthonormal AND mutually orthogonal
    for k, U_k in enumerate(d.bases):
        Xk = d.X[d.labels == k]
        np.testing.assert_allclose(Xk - Xk @ U_k @ U_k.T, 0, atol=1e-10)
    assert d.counts == [10, 10, 10]


def test_deterministic_per_seed() -> None:
    a, b, c = (gen(ambient_dim=10, dims=[2, 2], n_samples=8, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.allclose(a.X, c.X)


def test_largest_remainder() -> None:
    assert component_counts(10, [1 / 3] * 3) == [4, 3, 3]
    assert component_counts(7, [0.5, 0.25, 0.25]) == [3, 2, 2]
    assert sum(component_counts(101, [0.2, 0.3, 0.5])) == 101


def test_weights_iid_samples_per_component_and_noise() -> None:
    d = gen(ambient_dim=20, dims=[2, 2], n_samples=1000, weights=[3, 1], balanced=False, seed=0)
    assert abs(d.counts[0] / 1000 - 0.75) < 0.05 and sum(d.counts) == 1000
    np.testing.assert_allclose(d.weights, [0.75, 0.25])
    d = gen(ambient_dim=20, dims=[2, 3], samples_per_component=[4, 6], seed=0)
    assert d.counts == [4, 6] and d.X.shape == (10, 20)
    noisy = gen(ambient_dim=20, dims=[2], n_samples=50, noise_std=0.1, seed=0)
    resid = noisy.X - noisy.X @ noisy.bases[0] @ noisy.bases[0].T
    assert 0.05 < resid.std() < 0.15
    clean = gen(ambient_dim=20, dims=[2], n_samples=50, seed=0)  # the noise is drawn last
    assert 0.08 < (noisy.X - clean.X).std() < 0.12  # same clean part: the difference is the noise alone


def test_huge_weights_are_normalised_without_overflow() -> None:
    d = gen(ambient_dim=8, dims=[2, 2], n_samples=10, weights=[1e307, 1e307], seed=0)
    np.testing.assert_allclose(d.weights, [0.5, 0.5])
    assert d.counts == [5, 5]


def test_independent_subspaces_may_overlap() -> None:
    d = gen(ambient_dim=6, dims=[4, 4], n_samples=10, orthogonal=False, seed=0)
    for U in d.bases:
        np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-12)
    assert np.abs(d.bases[0].T @ d.bases[1]).max() > 0.1


def test_npz_has_U_k() -> None:
    d = gen(ambient_dim=8, dims=[2, 1], n_samples=4, seed=0)
    with np.load(io.BytesIO(npz_bytes(d.bases))) as z:
        assert sorted(z.files) == ["U_0", "U_1"] and z["U_1"].shape == (8, 1)


def test_requires_a_size() -> None:
    with pytest.raises(ValueError):
        gen(ambient_dim=8, dims=[2], seed=0)


@pytest.mark.parametrize("synthetic", [
    {"ambient_dim": 48, "dims": [4, 4], "n_samples": 20, "seed": 0},
    {"ambient_dim": 12, "dims": [2, 3], "samples_per_component": [3, 5], "noise_std": 0.1, "seed": 2**40},
    {"ambient_dim": 10, "dims": [3, 3], "n_samples": 30, "weights": [2, 1], "balanced": False,
     "orthogonal": False, "seed": 9},
])
def test_api_dataset_equals_make_molrg(sapi: Any, synthetic: dict[str, Any]) -> None:
    """An API dataset downloaded as .npy is molrg.make_molrg of the same spec and seed, bit for bit."""
    import molrg

    h = sapi.key()
    ds = make_dataset(sapi, h, **{"n_samples": None, **synthetic})
    X = np.load(io.BytesIO(sapi.client.get(ds["links"]["data"], headers=h).content))
    labels = np.load(io.BytesIO(sapi.client.get(ds["links"]["labels"], headers=h).content))
    ref = molrg.make_molrg(**synthetic)
    np.testing.assert_array_equal(X, ref.X.numpy())
    np.testing.assert_array_equal(labels, ref.labels.numpy())
    with np.load(io.BytesIO(sapi.client.get(ds["links"]["bases"], headers=h).content)) as z:
        for k, U in enumerate(ref.bases):
            np.testing.assert_array_equal(z[f"U_{k}"], U.numpy())


def test_generation_over_the_budget_is_refused_before_any_work(sapi: Any) -> None:
    spec = {"ambient_dim": 4096, "dims": [8], "n_samples": 12_000, "seed": 0}
    assert synthetic_peak_bytes(SyntheticSpec(**spec)) > sapi.settings.synthetic_budget_bytes
    r = sapi.client.post("/api/v1/datasets", json={"name": "big", "synthetic": spec}, headers=sapi.key())
    assert r.status_code == 422 and "synthetic_budget_bytes" in r.text, r.text
