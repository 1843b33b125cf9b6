"""fit_batched (spec sections 4, 5, 11): diffusion training reaches PCA / K-subspaces solutions."""

import pytest
import torch

from molrg.analysis.metrics import matched_errors
from molrg.data.synthetic import sample_molrg_batch
from molrg.lowrank.fitting import FitProgress, fit_batched
from molrg.lowrank.pca import pca_bases


def test_k1_exact_loss_training_reaches_pca_subspace():
    # Noisy data: the PCA subspace is unique and not the truth; the exact loss is affine in ||U^T X||^2.
    b = sample_molrg_batch([0, 1, 2, 3], 16, [3], n_samples=8, noise_std=0.2)
    res = fit_batched(b.X, [3], "diffusion", seed=0, steps=1500, tol=1e-7)
    assert res.info["model"] == "linear"
    assert (matched_errors(res.bases, pca_bases(b.X, 3)) < 1e-3).all()
    assert res.loss_history is not None and res.loss_history.shape[0] == 4
    assert (res.loss_history[:, -1] <= res.loss_history[:, 0]).all()


@pytest.mark.parametrize("opts", [{"optimizer": "sgd", "lr": 1.0}, {"retraction": "polar"}])
def test_k1_variants_recover_truth(opts):
    b = sample_molrg_batch([5, 6], 12, [2], n_samples=6)
    res = fit_batched(b.X, [2], "diffusion", seed=0, steps=1500, **opts)
    assert (matched_errors(res.bases, b.bases) < 0.1).all()


def test_hardmax_diffusion_recovers_k2_d3():
    b = sample_molrg_batch(list(range(4)), 20, [3, 3], samples_per_component=10)
    res = fit_batched(b.X, [3, 3], "diffusion", seed=0, steps=600)
    assert res.info["model"] == "hardmax" and res.info["init"] == "data"
    assert (matched_errors(res.bases, b.bases) < 0.1).all()


def test_batched_equals_single_trial():
    b = sample_molrg_batch([0, 1, 2], 10, [2, 2], samples_per_component=4, dtype=torch.float64)
    full = fit_batched(b.X, [2, 2], "diffusion", seed=7, steps=100, restarts=2)
    alone = fit_batched(b.X[1:2], [2, 2], "diffusion", seed=7, steps=100, restarts=2)
    assert torch.allclose(full.bases[1], alone.bases[0], atol=1e-8)
    assert torch.allclose(full.loss_history[1], alone.loss_history[0], atol=1e-8)


def test_callback_stops_early():
    b = sample_molrg_batch([0], 10, [2], n_samples=5)
    seen: list[FitProgress] = []

    def cb(p: FitProgress) -> bool:
        seen.append(p)
        return p.step >= 50

    res = fit_batched(b.X, [2], "diffusion", steps=1000, callback=cb, callback_every=25, tol=1e-30)
    assert res.info["stopped"] is True and res.info["steps_run"] == 50
    assert [p.step for p in seen] == [25, 50] and seen[0].total_steps == 1000
    assert res.loss_history.shape == (1, 51)  # the loss after 0..50 updates


def test_softmax_monte_carlo_runs_and_reports():
    b = sample_molrg_batch([0, 1], 8, [2, 2], samples_per_component=6, dtype=torch.float32)
    res = fit_batched(b.X, [2, 2], "diffusion", model="softmax", init="ksubspaces", steps=60, batch_size=16)
    assert res.info["model"] == "softmax" and res.loss_history.shape == (2, 61)
    assert torch.isfinite(res.bases).all() and torch.allclose(res.weights, torch.full((2, 2), 0.5))


def test_option_validation():
    X = torch.randn(1, 5, 6)
    with pytest.raises(ValueError, match="unknown option"):
        fit_batched(X, [2], "diffusion", learning_rate=0.1)
    with pytest.raises(ValueError, match="schedule"):
        fit_batched(X, [2], "diffusion", schedule="cosine")
    with pytest.raises(ValueError, match="method"):
        fit_batched(X, [2], "gmm")
    with pytest.raises(ValueError, match="linear"):
        fit_batched(X, [2, 2], "diffusion", model="linear")
    with pytest.raises(ValueError, match="steps"):
        fit_batched(X, [2], "diffusion", steps=0)
    with pytest.raises(ValueError, match="dims"):
        fit_batched(X, [6], "pca")


def _worker_fraction(p: FitProgress) -> float:
    """The fraction the worker derives (workers/pipelines.py: restarts as sequential passes)."""
    total = max(int(p.total_steps), 1) * max(int(getattr(p, "n_restarts", 1) or 1), 1)
    return (int(getattr(p, "restart", 0) or 0) * max(int(p.total_steps), 1) + int(p.step)) / total


def test_progress_of_batched_restarts_reaches_one_with_the_true_last_step():
    # K = 2 diffusion runs 2 restarts batched; early stop on convergence must end at step/step = 1.0.
    b = sample_molrg_batch([0], 12, [2, 2], samples_per_component=6)
    seen: list[FitProgress] = []
    res = fit_batched(b.X, [2, 2], "diffusion", steps=4000, init="random", restarts=2, callback=seen.append,
                      callback_every=25)
    assert res.info["restarts"] == 2 and res.info["steps_run"] < 4000  # it stopped early
    last = seen[-1]
    assert last.step == last.total_steps == res.info["steps_run"]
    assert last.fraction == 1.0 and _worker_fraction(last) == 1.0
    assert all(0 < p.fraction <= 1 for p in seen) and last.loss is not None and last.objective is None


def test_progress_runs_to_the_step_limit():
    b = sample_molrg_batch([1], 10, [2], n_samples=5)
    seen: list[FitProgress] = []
    fit_batched(b.X, [2], "diffusion", steps=60, tol=1e-30, callback=seen.append, callback_every=25)
    assert [(p.step, p.total_steps) for p in seen] == [(25, 60), (50, 60), (60, 60)]
    assert seen[-1].fraction == 1.0


def test_ksubspaces_progress_is_a_fraction_and_reports_the_objective_not_a_loss():
    b = sample_molrg_batch([0, 1], 12, [2, 2], samples_per_component=6)
    seen: list[FitProgress] = []
    res = fit_batched(b.X, [2, 2], "subspace_clustering", callback=seen.append)
    last = seen[-1]
    assert last.fraction == 1.0 and _worker_fraction(last) == 1.0 and last.step == res.info["iterations"]
    assert last.loss is None and last.objective == pytest.approx(float(res.sc_objective.mean()), rel=1e-6)
    assert last.objective > 0


@pytest.mark.parametrize("change", [{"schedule": "vp"}, {"schedule": "ve"}, {"weighting": "unit"},
                                    {"sigma_data": 3.0}])
def test_softmax_fit_uses_schedule_weighting_and_sigma_data(change):
    b = sample_molrg_batch([0], 10, [2, 2], samples_per_component=5)
    base = {"model": "softmax", "init": "random", "steps": 30, "batch_size": 16}
    ref = fit_batched(b.X, [2, 2], "diffusion", seed=3, **base)
    other = fit_batched(b.X, [2, 2], "diffusion", seed=3, **base, **change)
    assert ref.info["weighting"] == "edm"  # the soft-max default
    assert not torch.allclose(ref.bases, other.bases, atol=1e-6)


def test_exact_loss_edm_weighting_uses_the_data_scale_and_options_that_change_nothing_are_refused():
    from molrg.lowrank.losses import hardmax_loss_and_grad, loss_coefficients, row_weights

    b = sample_molrg_batch([0, 1], 10, [2], n_samples=6)
    res = fit_batched(b.X, [2], "pca", weighting="edm")
    w = row_weights(b.X, None)
    sd = ((w * b.X.square().sum(-1)).sum(-1) / 10).sqrt()  # per-trial sigma_data
    want = hardmax_loss_and_grad(res.bases, b.X, [2], loss_coefficients("edm", 64, "edm", sd), w)[0]
    torch.testing.assert_close(res.diffusion_loss, want)
    assert not torch.allclose(res.diffusion_loss, fit_batched(b.X, [2], "pca").diffusion_loss)
    with pytest.raises(ValueError, match="sigma_data"):
        fit_batched(b.X, [2], "diffusion", sigma_data=1.0)  # the exact loss takes the data scale
    with pytest.raises(ValueError, match="sigma_data"):
        fit_batched(b.X, [2, 2], "diffusion", model="softmax", weighting="unit", sigma_data=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        fit_batched(b.X, [2], "diffusion", batch_size=32)  # the exact loss has no minibatch
    with pytest.raises(ValueError, match="tol"):
        fit_batched(b.X, [2, 2], "diffusion", model="softmax", tol=1e-3)
    with pytest.raises(ValueError, match="init"):
        fit_batched(b.X, [2, 2], "subspace_clustering", init="pca")
    with pytest.raises(ValueError, match="unknown option"):
        fit_batched(b.X, [2, 2], "diffusion", init="ksubspaces", ks_restarts=3)
