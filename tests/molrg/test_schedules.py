"""Noise schedules (spec section 2) and the Karras sampling grid (section 8)."""

import math

import pytest
import torch
from scipy import integrate

from molrg.sampling.schedules import EDMSchedule, VESchedule, VPSchedule, get_schedule, get_sigmas_karras


def test_vp_matches_numerical_integral_and_inverts():
    vp = VPSchedule()
    t = torch.tensor([1e-3, 0.1, 0.5, 1.0], dtype=torch.float64)
    for ti in t.tolist():
        integral, _ = integrate.quad(lambda u: 0.1 + u * (20.0 - 0.1), 0.0, ti)
        assert abs(float(vp.s(ti)) - math.exp(-0.5 * integral)) < 1e-12
    torch.testing.assert_close(vp.s(t) ** 2 + vp.gamma(t) ** 2, torch.ones_like(t))
    torch.testing.assert_close(vp.sigma(t), vp.gamma(t) / vp.s(t))
    torch.testing.assert_close(vp.t_from_sigma(vp.sigma(t)), t)
    draws = vp.sample_t(1000, torch.Generator().manual_seed(0))
    assert draws.min() >= vp.t_min and draws.max() <= 1.0


def test_ve_and_edm():
    ve = VESchedule()
    sig = torch.tensor([0.01, 1.0, 50.0], dtype=torch.float64)
    assert torch.equal(ve.s(sig), torch.ones(3, dtype=torch.float64)) and torch.equal(ve.gamma(sig), sig)
    logs = EDMSchedule().sample_t(200_000, torch.Generator().manual_seed(1)).log()
    assert abs(float(logs.mean()) + 1.2) < 0.02 and abs(float(logs.std()) - 1.2) < 0.02
    assert get_schedule("vp", beta_max=10.0).beta_max == 10.0
    with pytest.raises(ValueError, match="schedule"):
        get_schedule("cosine")


def test_karras_grid():
    s = get_sigmas_karras(18)
    assert s.shape == (19,) and s.dtype == torch.float64 and s[-1] == 0
    assert abs(float(s[0]) - 80.0) < 1e-12 and abs(float(s[-2]) - 0.002) < 1e-15
    assert bool((s[1:] < s[:-1]).all())
    # rho-spacing: sigma^(1/rho) is equally spaced
    r = s[:-1] ** (1 / 7)
    torch.testing.assert_close(r[1:] - r[:-1], (r[1] - r[0]).expand(17))
    with pytest.raises(ValueError, match="steps"):
        get_sigmas_karras(0)
