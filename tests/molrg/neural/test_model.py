"""NeuralDiffusion facade: fit, sample, weights through safetensors, halves (section 12)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from molrg.analysis.jacobian import denoiser_jacobian
from molrg.data.synthetic import make_molrg
from molrg.neural import NeuralConfig, NeuralDiffusion, split_indices

CFG = NeuralConfig(width=16, depth=2, emb_dim=8, steps=20, batch_size=16, lr=3e-3)


@pytest.mark.parametrize("cfg", [CFG, NeuralConfig(architecture="unet", width=8, emb_dim=8, steps=5, batch_size=4, ema=0.9)])
def test_weights_reload_through_safetensors_to_the_same_denoiser(tmp_path, cfg):
    data = make_molrg(48, [4, 4], samples_per_component=6, seed=0)
    model = NeuralDiffusion(cfg).fit(data.X)
    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    config = NeuralConfig.from_json(model.config.to_json())
    again = NeuralDiffusion.from_state_dict(config, load_file(str(path)))
    x = torch.randn(7, 48, dtype=torch.float64)
    for s in [0.01, 0.5, 20.0]:
        assert torch.equal(again.denoise(x, s), model.denoise(x, s))
    assert torch.equal(again.sample(5, seed=3, steps=6), model.sample(5, seed=3, steps=6))
    assert torch.equal(again.training_rows(0), model.training_rows(0))
    assert again.networks.sigma_data.tolist() == model.networks.sigma_data.tolist()


def test_fit_samples_and_denoiser_interface():
    data = make_molrg(8, [2, 2], samples_per_component=8, seed=1)
    model = NeuralDiffusion(CFG, steps=12).fit(data.X)
    assert model.config.steps == 12 and model.steps_done_ == 12 and model.loss_history_.shape == (1, 12)
    for sampler in ["heun", "ddim", "sde"]:
        S = model.sample(6, seed=0, sampler=sampler, steps=5)
        assert S.shape == (6, 8) and S.dtype == torch.float64 and torch.isfinite(S).all()
        torch.testing.assert_close(model.sample(2, seed=0, sampler=sampler, steps=5), S[:2])  # per-sample seeds
    J = denoiser_jacobian(model.denoiser(), data.X[:3], 0.1)  # differentiable for the Jacobian tools
    assert J.shape == (3, 8, 8) and J.abs().sum() > 0
    assert model.denoise(data.X[:2].float(), 0.3).dtype == torch.float32
    sd = data.X.square().mean().sqrt().item()
    assert model.networks.sigma_data[0].item() == pytest.approx(sd)
    fixed = NeuralDiffusion(CFG, steps=2, sigma_data=0.5).fit(data.X)
    assert fixed.networks.sigma_data[0].item() == 0.5


def test_halves_are_two_members_on_disjoint_halves():
    data = make_molrg(8, [2, 2], samples_per_component=9, seed=2)  # N = 18
    model = NeuralDiffusion(CFG, split="halves").fit(data.X)
    a, b = model.training_rows(0), model.training_rows(1)
    assert len(a) == len(b) == 9 and not set(a.tolist()) & set(b.tolist())
    assert model.n_members == 2 and model.loss_history_.shape == (2, 20)
    both = model.sample_members(5, seed=4, steps=4)
    assert both.shape == (2, 5, 8)
    torch.testing.assert_close(both[1], model.sample(5, seed=4, steps=4, member=1))
    assert not torch.allclose(both[0], both[1])
    assert [t.tolist() for t in split_indices(18, "halves", 0)] == [t.tolist() for t in split_indices(18, "halves", 0)]
    assert len(split_indices(7, "halves", 0)[1]) == 3
    with pytest.raises(ValueError):
        split_indices(1, "halves", 0)


def test_callback_cancels_a_fit_between_steps():
    data = make_molrg(8, [2, 2], samples_per_component=4, seed=3)
    model = NeuralDiffusion(CFG, steps=1000).fit(data.X, callback=lambda p: p.step >= 3)
    assert model.stopped_ and model.steps_done_ == 3 and model.loss_history_.shape == (1, 3)


def test_unfitted_model_raises():
    with pytest.raises(ValueError):
        NeuralDiffusion(CFG).sample(3)
    with pytest.raises(ValueError):
        NeuralDiffusion(CFG).fit(torch.randn(3))
