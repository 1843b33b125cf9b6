"""Jacobian rank of the exact denoiser (spec section 9)."""

import pytest
import torch

from molrg.analysis.jacobian import (
    denoiser_jacobian,
    jacobian_rank,
    jacobian_rank_along_trajectory,
    numerical_rank,
)
from molrg.data.synthetic import make_molrg
from molrg.lowrank.analytic import exact_denoiser


@pytest.fixture(scope="module")
def model():
    data = make_molrg(20, [3, 3], n_samples=4, seed=0)
    return data, exact_denoiser(data.bases)


def test_jacobian_matches_autograd_functional(model):
    data, D = model
    x = data.X[:2] + 0.1
    J = denoiser_jacobian(D, x, 0.7)
    for m in range(2):
        want = torch.autograd.functional.jacobian(lambda v: D(v[None], 0.7)[0], x[m])
        torch.testing.assert_close(J[m], want, atol=1e-12, rtol=1e-10)


def test_numerical_rank():
    s = torch.tensor([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0], [10.0, 1.5, 0.01], [0.0, 0.0, 0.0]])
    assert numerical_rank(s).tolist() == [2, 3, 2, 0]
    assert numerical_rank(s, energy=0.9).tolist() == [1, 3, 1, 0]


def test_rank_plateaus_d_at_high_snr_and_sum_d_at_low_snr(model):
    data, D = model
    x = data.X  # clean points on the subspaces
    ranks = jacobian_rank(D, x, [0.01, 50.0])
    assert ranks[0].tolist() == [3] * 4  # one component selected: rank d
    assert ranks[1].tolist() == [6] * 4  # weights spread: rank d_1 + d_2


def test_rank_along_heun_trajectory(model):
    _, D = model
    rep = jacobian_rank_along_trajectory(D, 20, seed=3, n_samples=2, steps=8)
    assert len(rep["sigmas"]) == 8 and rep["sigmas"][0] == pytest.approx(80.0)
    assert rep["rank_ratio"][0] == pytest.approx(6 / 20)
    assert rep["rank_ratio"][-1] == pytest.approx(3 / 20)
    assert all(a >= b for a, b in zip(rep["rank_mean"], rep["rank_mean"][1:], strict=False))


def test_loop_fallback_when_vmap_is_unavailable(model, monkeypatch):
    data, D = model
    want = denoiser_jacobian(D, data.X, 0.3)
    real_grad = torch.autograd.grad

    def no_batched(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("no batching rule")
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batched)
    torch.testing.assert_close(denoiser_jacobian(D, data.X, 0.3), want, atol=1e-13, rtol=0)
