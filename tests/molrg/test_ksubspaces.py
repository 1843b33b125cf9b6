"""K-subspaces (spec sections 4, 5, 11): recovery, data-seeded init, padding, empty clusters."""

import torch

from molrg.analysis.metrics import matched_errors, subspace_clustering_objective
from molrg.data.synthetic import sample_molrg_batch
from molrg.lowrank.fitting import fit_batched
from molrg.lowrank.ksubspaces import k_subspaces


def test_recovers_k2_d3():
    b = sample_molrg_batch(list(range(5)), 20, [3, 3], samples_per_component=10)
    res = fit_batched(b.X, [3, 3], "subspace_clustering", seed=0)
    assert (matched_errors(res.bases, b.bases) < 0.1).all()
    assert torch.allclose(res.weights, torch.full((5, 2), 0.5, dtype=res.weights.dtype))
    assert torch.allclose(res.sc_objective, subspace_clustering_objective(b.X, b.bases))


def test_data_seeded_init_solves_k3_d4_nk6():
    b = sample_molrg_batch(list(range(10)), 48, [4, 4, 4], samples_per_component=6)
    res = k_subspaces(b.X, [4, 4, 4], n_restarts=10, seed=1)
    success = (matched_errors(res.bases, b.bases).amax(-1) < 0.5).float().mean()
    assert success >= 0.9


def test_padding_rows_match_unpadded_fit():
    b = sample_molrg_batch([11], 16, [2, 2], samples_per_component=5)
    padded = torch.cat([b.X, torch.zeros(1, 6, 16, dtype=b.X.dtype)], 1)
    r1 = k_subspaces(b.X, [2, 2], seed=3)
    r2 = k_subspaces(padded, [2, 2], seed=3, n_valid=torch.tensor([10]))
    assert torch.allclose(r1.objective, r2.objective, atol=1e-10)
    assert matched_errors(r1.bases, r2.bases).max() < 1e-8


def test_empty_cluster_is_reseeded():
    # All points on one line: one component necessarily starts or becomes empty; result stays orthonormal.
    X = torch.zeros(1, 6, 5, dtype=torch.float64)
    X[0, :, 0] = torch.arange(1, 7, dtype=torch.float64)
    res = k_subspaces(X, [1, 1], n_restarts=2, seed=0)
    gram = res.bases.transpose(-1, -2) @ res.bases
    assert torch.allclose(gram, torch.ones_like(gram), atol=1e-10)
    assert torch.isfinite(res.objective).all()
