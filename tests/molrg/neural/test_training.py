"""Batched ensembles: a member equals the same member trained alone; callback; configs (section 12)."""

from dataclasses import replace

import pytest
import torch

from molrg.data.synthetic import make_molrg
from molrg.neural.config import NeuralConfig, image_layout
from molrg.neural.ensemble import TRAIN_STREAM, StackedNetworks, stream_seed
from molrg.neural.precond import edm_loss, sample_training_sigmas
from molrg.neural.training import _draw_steps, data_sigma, learning_rate, train_ensemble

TINY = NeuralConfig(width=16, depth=2, emb_dim=8, steps=25, batch_size=8, lr=3e-3)


def _data(n=12, dims=(2, 2), nk=6, seed=0):
    return make_molrg(n, list(dims), samples_per_component=nk, seed=seed).X


def _assert_same_member(a: StackedNetworks, i: int, b: StackedNetworks, j: int, tol: float) -> None:
    for k in a.params:
        torch.testing.assert_close(a.params[k][i], b.params[k][j], rtol=tol, atol=tol, msg=k)


def test_member_in_an_ensemble_equals_the_member_trained_alone_float64():
    # members differ in seed, training set, size N and intrinsic dimension d (data only)
    Xs = [_data(seed=0), _data(dims=(3, 1), nk=11, seed=4), _data(dims=(4, 4), nk=3, seed=7)]
    seeds = [3, 11, 5]
    cfg = NeuralConfig(width=16, depth=2, emb_dim=8, steps=25, batch_size=8, lr=3e-3, ema=0.9, grad_clip=0.5)
    ens = train_ensemble(cfg, Xs, seeds, dtype=torch.float64)
    assert ens.loss_history.shape == (3, 25) and ens.steps_done == 25 and not ens.stopped
    for b in range(3):
        solo = train_ensemble(cfg, [Xs[b]], [seeds[b]], dtype=torch.float64)
        _assert_same_member(ens.networks, b, solo.networks, 0, 1e-10)
        torch.testing.assert_close(ens.loss_history[b], solo.loss_history[0], rtol=1e-10, atol=1e-12)
        assert ens.networks.sigma_data[b].item() == pytest.approx(data_sigma(Xs[b]))
    unclipped = train_ensemble(replace(cfg, grad_clip=0.0), Xs[:1], seeds[:1], dtype=torch.float64)
    assert not torch.allclose(unclipped.networks.params["out.weight"][0], ens.networks.params["out.weight"][0])
    # and the members did learn different things (the test could fail)
    assert (ens.networks.params["layers.0.weight"][0] - ens.networks.params["layers.0.weight"][1]).abs().max() > 1e-3


def test_stacked_adam_equals_a_plain_module_loop_with_the_same_draws():
    """One Adam over the stack (per-member clipping) = B independent torch Adams (and torch's
    clip_grad_norm_) on ordinary nn.Modules."""
    X = _data()
    cfg = replace(TINY, grad_clip=0.05)  # small enough to clip on most steps
    seed = 2
    res = train_ensemble(cfg, [X, _data(seed=1)], [seed, 9], dtype=torch.float64)
    init = StackedNetworks.initialise(cfg, X.shape[1], [seed], [data_sigma(X)], dtype=torch.float64)
    D = init.member_module(0)
    opt = torch.optim.Adam(D.backbone.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(stream_seed(seed, TRAIN_STREAM))
    n, bs, sd = X.shape[1], cfg.batch_size, data_sigma(X)
    step = 0
    while step < cfg.steps:
        S = _draw_steps(cfg, n)
        idx = torch.randint(X.shape[0], (S, bs), generator=g)
        sig = sample_training_sigmas((S, bs), g, dtype=torch.float64)
        eps = torch.randn((S, bs, n), generator=g, dtype=torch.float64)
        for j in range(min(S, cfg.steps - step)):
            for grp in opt.param_groups:
                grp["lr"] = learning_rate(cfg, step)
            loss = edm_loss(D.backbone, X[idx[j]], sig[j], eps[j], sd)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(D.backbone.parameters(), cfg.grad_clip)  # one member = one module
            opt.step()
            step += 1
    for name, p in D.backbone.named_parameters():
        torch.testing.assert_close(res.networks.params[name][0], p.detach(), rtol=1e-9, atol=1e-11, msg=name)


def test_unet_members_train_as_one_program_and_equal_solo():
    X = make_molrg(48, [4, 4], samples_per_component=5, seed=3).X  # 4x4x3 images
    cfg = NeuralConfig(architecture="unet", width=8, depth=2, emb_dim=8, steps=6, batch_size=4)
    ens = train_ensemble(cfg, [X, X[:7]], [0, 1], dtype=torch.float64)
    solo = train_ensemble(cfg, [X[:7]], [1], dtype=torch.float64)
    _assert_same_member(ens.networks, 1, solo.networks, 0, 1e-10)
    assert torch.isfinite(ens.loss_history).all()


def test_callback_sees_every_step_and_stops_training():
    seen = []

    def cb(progress):
        seen.append(progress)
        return progress.step == 7

    res = train_ensemble(TINY, [_data(), _data(seed=2)], [0, 1], callback=cb)
    assert res.stopped and res.steps_done == 7 and res.loss_history.shape == (2, 7)
    assert [p.step for p in seen] == list(range(1, 8)) and all(p.total_steps == 25 for p in seen)
    assert seen[-1].loss == pytest.approx(res.loss_history[:, -1].tolist())
    every = []
    train_ensemble(TINY, [_data()], [0], callback=lambda p: every.append(p.step), callback_every=10)
    assert every == [10, 20, 25]


def test_learning_rate_schedules():
    cos = NeuralConfig(steps=100, lr=1e-3)
    assert learning_rate(cos, 0) == pytest.approx(1e-3)
    assert learning_rate(cos, 50) == pytest.approx(5e-4)
    assert learning_rate(cos, 99) < 1e-6
    const = NeuralConfig(steps=100, lr=2e-3, lr_schedule="constant")
    assert learning_rate(const, 99) == 2e-3


def test_training_reduces_the_loss():
    cfg = NeuralConfig(width=32, depth=2, emb_dim=16, steps=150, batch_size=64, lr=3e-3)
    res = train_ensemble(cfg, [_data(nk=32)], [0])
    first, last = res.loss_history[0, :10].mean().item(), res.loss_history[0, -30:].mean().item()
    assert first == pytest.approx(1.0, abs=0.35)  # F = 0 at init: loss 1 in expectation
    assert last < 0.8 * first


def test_config_json_round_trip_and_validation():
    cfg = NeuralConfig(architecture="unet", channels=3, ema=0.999, sigma_data=0.3, split="halves", seed=4)
    assert cfg.width == 32 and cfg.depth == 2 and cfg.n_members == 2
    assert NeuralConfig.from_json(cfg.to_json()) == cfg
    assert NeuralConfig().width == 256 and NeuralConfig().depth == 3
    for bad in [dict(architecture="cnn"), dict(width=0), dict(ema=1.0), dict(lr=0.0), dict(split="thirds"),
                dict(architecture="unet", depth=3), dict(sigma_data=-1.0), dict(emb_dim=7)]:
        with pytest.raises(ValueError):
            NeuralConfig(**bad)
    with pytest.raises(ValueError, match="unknown"):
        NeuralConfig.from_dict({"widht": 3})
    assert image_layout(48) == (3, 4) and image_layout(64) == (1, 8) and image_layout(64, 4) == (4, 4)
    with pytest.raises(ValueError):
        image_layout(50)
    with pytest.raises(ValueError):
        train_ensemble(NeuralConfig(architecture="unet", steps=1), [torch.randn(4, 50)], [0])


def test_inputs_are_checked():
    with pytest.raises(ValueError):
        train_ensemble(TINY, [torch.randn(4, 3), torch.randn(4, 5)], [0, 1])
    with pytest.raises(ValueError):
        train_ensemble(TINY, [torch.randn(4, 3)], [0, 1])
    with pytest.raises(ValueError):
        train_ensemble(TINY, [torch.zeros(4, 3)], [0])


def test_denoise_members_equals_each_member_denoiser_and_module():
    Xs = [_data(), _data(seed=5)]
    res = train_ensemble(TINY, Xs, [0, 1], dtype=torch.float64)
    nets = res.networks
    x = torch.randn(5, 12, dtype=torch.float64)
    both = nets.denoise_members(x, 0.3)
    assert both.shape == (2, 5, 12)
    per_member_x = nets.denoise_members(torch.stack([x, 2 * x]), torch.full((2, 5), 0.3, dtype=torch.float64))
    for b in range(2):
        torch.testing.assert_close(both[b], nets.member_denoiser(b)(x, 0.3), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(both[b], nets.member_module(b)(x, 0.3), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(per_member_x[b], nets.member_denoiser(b)((b + 1) * x, 0.3), rtol=1e-12, atol=1e-12)
    assert nets.n_parameters == sum(p.numel() for p in nets.member_module(0).backbone.parameters())
    sub = nets.subset([1])
    torch.testing.assert_close(sub.denoise_members(x, 0.3)[0], both[1])
