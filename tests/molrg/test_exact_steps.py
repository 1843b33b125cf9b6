"""The fused exact-loss steps equal the reference: StiefelOptimizer driven by hardmax_loss_and_grad (sections 4-5)."""

import math

import pytest
import torch

from molrg.lowrank.exact_steps import ExactLossSteps
from molrg.lowrank.losses import hardmax_loss_and_grad, loss_coefficients, row_weights
from molrg.lowrank.stiefel import StiefelOptimizer, random_stiefel

CASES = [
    ([3], 1, "adam", "qr"),  # the linear model
    ([2, 2, 2], 1, "adam", "qr"),  # hard-max, equal dims
    ([2, 2], 2, "adam", "qr"),  # restarts
    ([3, 1, 2], 2, "adam", "qr"),  # unequal dims: padded rows stay zero without masks
    ([2, 3], 2, "sgd", "qr"),
    ([3], 2, "adam", "polar"),
    ([1, 3], 1, "sgd", "polar"),
]


@pytest.mark.parametrize(("dims", "R", "optimizer", "retraction"), CASES)
def test_fused_steps_follow_the_reference(dims, R, optimizer, retraction):
    gen = torch.Generator().manual_seed(len(dims) * 10 + R)
    B, N, n = 4, 11, 9
    nv = torch.tensor([11, 7, 5, 9])
    w = row_weights(torch.zeros(B, N, n, dtype=torch.float64), nv)
    X = torch.randn(B, N, n, generator=gen, dtype=torch.float64) * (w > 0)[..., None]
    X = X * torch.tensor([1.0, 3.0, 0.2, 1.0], dtype=torch.float64)[:, None, None]  # per-trial scales
    U = random_stiefel((R, len(dims), n, max(dims)), dims, gen, torch.float64).expand(B, -1, -1, -1, -1).contiguous()
    coef = loss_coefficients("edm", 16, "edm", torch.tensor([0.5, 1.0, 2.0, 0.7], dtype=torch.float64))
    scale = 2 * coef.kappa * (w * X.square().sum(-1)).sum(-1)  # type: ignore[operator]
    ref = StiefelOptimizer(dims, optimizer, retraction,
                           eps=math.sqrt(torch.finfo(torch.float64).eps) * scale.view(B, 1, 1, 1, 1))
    fast = ExactLossSteps(U, X, w, dims, coef, optimizer, retraction)
    for i in range(40):
        lr = 0.2 * (1 - i / 40) + 0.01
        loss_ref, egrad, _ = hardmax_loss_and_grad(U, X, dims, coef, w)
        if optimizer == "sgd":
            egrad = egrad / (scale / 2).view(B, 1, 1, 1, 1)
        loss_fast = fast.loss()
        torch.testing.assert_close(loss_fast, loss_ref, rtol=1e-12, atol=1e-12)
        U, _ = ref.step(U, egrad, lr)
        fast.step(lr)
    torch.testing.assert_close(fast.U, U, rtol=0, atol=1e-9)
    live = torch.arange(max(dims))[None, :] < torch.tensor(dims)[:, None]  # (K, dmax)
    assert (fast.U.transpose(-1, -2)[..., ~live, :] == 0).all()


def test_frozen_fits_stay_and_keep_drops_rows():
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(3, 8, 6, generator=gen, dtype=torch.float64)
    w = row_weights(X, None)
    U = random_stiefel((2, 1, 6, 2), [2], gen, torch.float64).expand(3, -1, -1, -1, -1).contiguous()
    fast = ExactLossSteps(U, X, w, [2], loss_coefficients(), "adam", "qr")
    frozen = torch.tensor([[True, False], [False, False], [True, True]])
    fast.loss()
    fast.step(0.1, frozen=frozen)
    assert torch.equal(fast.U[frozen], U[frozen])
    assert not torch.allclose(fast.U[~frozen], U[~frozen])
    kept = fast.U[[0, 2]].clone()
    fast.keep(torch.tensor([0, 2]))
    assert torch.equal(fast.U, kept) and fast.loss().shape == (2, 2)


def test_edm_weighted_exact_fit_of_a_batch_equals_each_fit_alone():
    """Per-trial sigma_data (weighting="edm") gives per-trial coefficients; each trial fits as if alone."""
    from molrg.data.synthetic import sample_molrg_batch
    from molrg.lowrank.fitting import fit_batched

    b = sample_molrg_batch([1, 2, 3], 12, [2, 2], samples_per_component=6)
    X = b.X * torch.tensor([1.0, 4.0, 0.3], dtype=b.X.dtype)[:, None, None]
    opts = {"weighting": "edm", "steps": 200, "restarts": 2}
    batch = fit_batched(X, [2, 2], "diffusion", seed=5, **opts)
    for i in range(3):
        alone = fit_batched(X[i : i + 1], [2, 2], "diffusion", seed=5, **opts)
        torch.testing.assert_close(batch.bases[i], alone.bases[0], rtol=0, atol=1e-10)
        torch.testing.assert_close(batch.loss_history[i], alone.loss_history[0], rtol=1e-12, atol=1e-12)
