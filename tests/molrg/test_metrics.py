"""Recovery and clustering metrics (spec section 6)."""

import itertools
import math

import pytest
import torch

from molrg.analysis.metrics import (
    assign_components,
    cluster_sizes,
    component_errors,
    error_matrix,
    explained_energy,
    match_components,
    matched_errors,
    principal_angles,
    projection_distance,
    recovery_error,
    recovery_report,
    subspace_clustering_objective,
    success,
)
from molrg.bases import pad_bases
from molrg.data.synthetic import make_molrg, sample_molrg_batch

F64 = torch.float64


def _random_rotation(d, gen):
    return torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=F64))[0]


def test_principal_angles_of_constructed_subspaces():
    n, d = 10, 3
    theta = torch.tensor([1e-9, 0.7, 1.3], dtype=F64)  # tiny angles stay accurate (no bare arccos)
    E = torch.eye(n, dtype=F64)
    U = E[:, :d]
    U_hat = torch.cos(theta) * E[:, :d] + torch.sin(theta) * E[:, d : 2 * d]
    gen = torch.Generator().manual_seed(0)
    R = _random_rotation(n, gen)  # a common rotation changes nothing
    got = principal_angles(R @ U_hat @ _random_rotation(d, gen), R @ U)
    torch.testing.assert_close(got, theta, atol=1e-13, rtol=1e-6)
    want = math.sqrt(2 * float(torch.sin(theta).square().sum()))
    assert abs(float(projection_distance(U_hat, U)) - want) < 1e-12


def test_projection_distance_equals_principal_angle_formula_and_projectors():
    gen = torch.Generator().manual_seed(1)
    A = torch.linalg.qr(torch.randn(4, 12, 5, generator=gen, dtype=F64))[0]
    B = torch.linalg.qr(torch.randn(4, 12, 5, generator=gen, dtype=F64))[0]
    via_angles = (2 * torch.sin(principal_angles(A, B)).square().sum(-1)).sqrt()
    via_proj = torch.linalg.matrix_norm(A @ A.mT - B @ B.mT)
    torch.testing.assert_close(projection_distance(A, B), via_angles, atol=1e-10, rtol=0)
    torch.testing.assert_close(projection_distance(A, B), via_proj, atol=1e-12, rtol=0)
    # unequal dims
    C = B[..., :2]
    torch.testing.assert_close(projection_distance(A, C), torch.linalg.matrix_norm(A @ A.mT - C @ C.mT))


def test_error_matrix_with_padding_matches_explicit_projectors():
    batch = sample_molrg_batch([0, 1], 15, [2, 4, 3], n_samples=3, orthogonal=False)
    other = sample_molrg_batch([5, 6], 15, [3, 1, 2], n_samples=3, orthogonal=False)
    E = error_matrix(other.bases, batch.bases)
    assert E.shape == (2, 3, 3)
    P1 = other.bases @ other.bases.mT
    P2 = batch.bases @ batch.bases.mT
    want = torch.linalg.matrix_norm(P1[:, :, None] - P2[:, None, :])
    torch.testing.assert_close(E, want, atol=1e-12, rtol=0)


def test_recovery_error_invariant_to_rotation_and_permutation():
    gen = torch.Generator().manual_seed(2)
    true = make_molrg(20, [2, 3, 4], n_samples=3, seed=0).bases
    assert recovery_error(true, true) < 1e-12
    rotated = [B @ _random_rotation(B.shape[1], gen) for B in true]
    assert recovery_error([rotated[2], rotated[0], rotated[1]], true) < 1e-12
    # perturb one component: the error is that component's projection distance, whatever the order
    bad = torch.linalg.qr(true[1] + 0.3 * torch.randn(20, 3, generator=gen, dtype=F64))[0]
    want = float(projection_distance(bad, true[1]))
    assert abs(recovery_error([true[2], bad, true[0]], true) - want) < 1e-12
    rep = recovery_report([true[2], bad, true[0]], pad_bases(true))
    assert rep["permutation"] == [2, 1, 0] and abs(rep["max_error"] - want) < 1e-12
    ang = torch.tensor(rep["principal_angles"][1], dtype=F64)
    assert abs(math.sqrt(2 * float(torch.sin(ang).square().sum())) - want) < 1e-9


def _brute_force(E):
    K = E.shape[-1]
    best = min(itertools.permutations(range(K)), key=lambda p: sum(float(E[p[j], j]) for j in range(K)))
    return sum(float(E[best[j], j]) for j in range(K))


@pytest.mark.parametrize("K", [1, 2, 3, 5, 7])
def test_matching_is_optimal_against_brute_force(K):
    gen = torch.Generator().manual_seed(K)
    E = torch.rand(6, K, K, generator=gen, dtype=F64)
    perm, errors = match_components(E)
    assert sorted(perm[0].tolist()) == list(range(K))
    for b in range(6):
        assert abs(float(errors[b].sum()) - _brute_force(E[b])) < 1e-12
        torch.testing.assert_close(errors[b], E[b][perm[b], torch.arange(K)])


def test_matched_errors_batched_and_contract_alias():
    batch = sample_molrg_batch([0, 1, 2], 20, [2, 3], n_samples=4)
    shuffled = batch.bases[:, [1, 0]]
    assert matched_errors(shuffled, batch.bases).max() < 1e-12
    assert component_errors(shuffled, batch.bases, [3, 2], [2, 3]).max() < 1e-12
    ok = success(matched_errors(shuffled, batch.bases))
    assert ok.shape == (3,) and bool(ok.all())
    assert success(0.2) is True and success(1.4) is False
    with pytest.raises(ValueError, match="K"):
        recovery_error(batch.bases[0], batch.bases[0, :1])


def test_clustering_objective_energy_and_sizes():
    data = make_molrg(30, [2, 5, 3], samples_per_component=[4, 6, 7], seed=3)
    U = pad_bases(data.bases)
    X = data.X
    loop = sum(max(float((B.T @ x).square().sum()) for B in data.bases) for x in X)
    assert abs(float(subspace_clustering_objective(X, U)) - loop) < 1e-9
    assert abs(float(explained_energy(X, U)) - 1.0) < 1e-12
    assert abs(float(explained_energy(X, U, data.labels)) - 1.0) < 1e-12
    assert torch.equal(assign_components(X, U), data.labels)
    assert cluster_sizes(X, U).tolist() == [4, 6, 7]
    wrong = torch.roll(data.labels, 1)
    assert float(explained_energy(X, U, wrong)) < 1.0
    # batched
    Xb, Ub = torch.stack([X, X]), torch.stack([U, U])
    assert subspace_clustering_objective(Xb, Ub).shape == (2,)
    with pytest.raises(ValueError, match="n="):
        subspace_clustering_objective(X[:, :10], U)
