"""EDM preconditioning, loss weight and training sigmas against the formulas of spec section 12."""

import math

import pytest
import torch

from molrg.neural.precond import (
    Preconditioned,
    edm_loss,
    edm_loss_weight,
    edm_scalings,
    precondition,
    sample_training_sigmas,
)


def test_scalings_match_the_formulas():
    sigma = torch.tensor([0.002, 0.05, 0.29, 1.0, 80.0], dtype=torch.float64)
    sd = 0.29
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
    for i, s in enumerate(sigma.tolist()):
        assert c_skip[i].item() == pytest.approx(sd**2 / (s**2 + sd**2), rel=1e-14)
        assert c_out[i].item() == pytest.approx(s * sd / math.sqrt(s**2 + sd**2), rel=1e-14)
        assert c_in[i].item() == pytest.approx(1 / math.sqrt(s**2 + sd**2), rel=1e-14)
        assert c_noise[i].item() == pytest.approx(math.log(s) / 4, rel=1e-14)
    # D(x; sigma) has unit-variance input and the limits of EDM: sigma -> 0 is the identity
    assert c_skip[0].item() == pytest.approx(1.0, abs=1e-4) and c_out[0].item() < 0.0021


def test_loss_weight_is_the_formula_and_one_over_c_out_squared():
    sigma = torch.logspace(-3, 2, 11, dtype=torch.float64)
    sd = torch.tensor(0.5, dtype=torch.float64)
    lam = edm_loss_weight(sigma, sd)
    torch.testing.assert_close(lam, (sigma**2 + sd**2) / (sigma * sd) ** 2, rtol=1e-14, atol=0)
    _, c_out, _, _ = edm_scalings(sigma, sd)
    torch.testing.assert_close(lam, c_out.pow(-2), rtol=1e-12, atol=0)


def test_precondition_wraps_the_backbone_as_in_section_12():
    seen = {}

    def F(x_in, c_noise):
        seen["x_in"], seen["c_noise"] = x_in, c_noise
        return torch.sin(x_in) + c_noise[:, None]

    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.1, 1.0, 10.0, 80.0], dtype=torch.float64)
    sd = 0.3
    out = precondition(F, x, sigma, sd)
    tot = sigma**2 + sd**2
    x_in = x / tot.sqrt()[:, None]
    expected = (sd**2 / tot)[:, None] * x + (sigma * sd / tot.sqrt())[:, None] * (torch.sin(x_in) + (sigma.log() / 4)[:, None])
    torch.testing.assert_close(out, expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(seen["x_in"], x_in, rtol=1e-14, atol=0)
    torch.testing.assert_close(seen["c_noise"], sigma.log() / 4)


def test_edm_loss_is_the_weighted_error_and_equals_the_F_target_form():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(64, 6, generator=g, dtype=torch.float64) * 0.4
    sigma = sample_training_sigmas(64, g, dtype=torch.float64)
    eps = torch.randn(64, 6, generator=g, dtype=torch.float64)
    W = torch.randn(6, 6, generator=g, dtype=torch.float64) * 0.3

    def F(x_in, c_noise):
        return torch.tanh(x_in @ W) * (1 + c_noise[:, None])

    sd = 0.4
    loss = edm_loss(F, x0, sigma, eps, sd)
    x = x0 + sigma[:, None] * eps
    D = precondition(F, x, sigma, sd)
    lam = (sigma**2 + sd**2) / (sigma * sd) ** 2
    assert loss.item() == pytest.approx((lam[:, None] * (D - x0) ** 2).sum(1).mean().item() / 6, rel=1e-13)
    # lambda ||D - x0||^2 = ||F - F_target||^2 with F_target = (x0 - c_skip x) / c_out
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
    target = (x0 - c_skip[:, None] * x) / c_out[:, None]
    alt = (F(c_in[:, None] * x, c_noise) - target).square().mean()
    assert loss.item() == pytest.approx(alt.item(), rel=1e-11)


def test_loss_of_the_zero_network_is_one_per_coordinate():
    g = torch.Generator().manual_seed(2)
    sd = 0.29
    x0 = sd * torch.randn(200_000, 4, generator=g, dtype=torch.float64)
    sigma = sample_training_sigmas(200_000, g, dtype=torch.float64)
    eps = torch.randn(200_000, 4, generator=g, dtype=torch.float64)
    loss = edm_loss(lambda x, c: torch.zeros_like(x), x0, sigma, eps, sd)
    assert loss.item() == pytest.approx(1.0, abs=0.01)


def test_training_sigmas_are_lognormal_with_edm_parameters():
    g = torch.Generator().manual_seed(3)
    s = sample_training_sigmas(200_000, g, dtype=torch.float64)
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.01)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.01)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    torch.testing.assert_close(sample_training_sigmas((3, 4), g1), sample_training_sigmas((3, 4), g2))


def test_preconditioned_module_keeps_float64_skip_and_runs_F_in_its_dtype():
    net = torch.nn.Linear(3, 3).to(torch.float32)

    class Backbone(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = net

        def forward(self, x, c):
            assert x.dtype == torch.float32
            return self.lin(x) * c[:, None]

    D = Preconditioned(Backbone(), 0.5)
    x = torch.randn(4, 3, dtype=torch.float64)
    out = D(x, 2.0)
    assert out.dtype == torch.float64
    s = torch.full((4,), 2.0, dtype=torch.float64)
    expected = precondition(lambda xi, c: Backbone()(xi.float(), c.float()).double(), x, s, 0.5)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        Preconditioned(Backbone(), 0.0)
