"""EDM preconditioning, loss weight and training noise levels (Karras et al. 2022; spec section 12).

With ``s = 1`` and ``x_t = x0 + sigma eps`` the network ``F`` is wrapped as

    D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)
    c_skip = sd^2 / (sigma^2 + sd^2),   c_out = sigma sd / sqrt(sigma^2 + sd^2)
    c_in   = 1 / sqrt(sigma^2 + sd^2),  c_noise = ln(sigma) / 4,       sd = sigma_data

and trained on ``E lambda(sigma) ||D(x0 + sigma eps; sigma) - x0||^2`` with
``lambda = (sigma^2 + sd^2) / (sigma sd)^2`` and ``ln sigma ~ N(P_mean, P_std^2)``. The weight makes
the effective target of ``F`` unit-variance at every sigma: ``lambda ||D - x0||^2 = ||F - F_target||^2``.
The functions are plain broadcasting torch code so they run inside ``torch.func.vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "P_MEAN",
    "P_STD",
    "Preconditioned",
    "edm_loss",
    "edm_loss_weight",
    "edm_scalings",
    "precondition",
    "sample_training_sigmas",
]

P_MEAN = -1.2
P_STD = 1.2

Backbone = Callable[[Tensor, Tensor], Tensor]


def edm_scalings(sigma: Tensor, sigma_data: Tensor | float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(c_skip, c_out, c_in, c_noise)`` of EDM (spec section 12), each broadcast like ``sigma``."""
    sd = torch.as_tensor(sigma_data, dtype=sigma.dtype, device=sigma.device)
    total = sigma * sigma + sd * sd
    c_skip = sd * sd / total
    c_out = sigma * sd / total.sqrt()
    c_in = total.rsqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


def edm_loss_weight(sigma: Tensor, sigma_data: Tensor | float) -> Tensor:
    """``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2`` (spec section 12) = ``1 / c_out^2``."""
    sd = torch.as_tensor(sigma_data, dtype=sigma.dtype, device=sigma.device)
    return (sigma * sigma + sd * sd) / (sigma * sd) ** 2


def sample_training_sigmas(
    shape: int | tuple[int, ...],
    generator: torch.Generator,
    *,
    p_mean: float = P_MEAN,
    p_std: float = P_STD,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """EDM training noise levels ``ln sigma ~ N(p_mean, p_std^2)`` on the generator's device."""
    size = (shape,) if isinstance(shape, int) else tuple(shape)
    z = torch.randn(size, generator=generator, dtype=dtype, device=generator.device)
    return torch.exp(p_mean + p_std * z)


def precondition(backbone: Backbone, x: Tensor, sigma: Tensor, sigma_data: Tensor | float) -> Tensor:
    """``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` for x (M, n) and sigma (M,).

    ``F`` runs in the dtype of x; callers that keep x in float64 (the samplers) cast before calling.
    """
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sigma_data)
    f = backbone(c_in[:, None] * x, c_noise)
    return c_skip[:, None] * x + c_out[:, None] * f


def edm_loss(
    backbone: Backbone, x0: Tensor, sigma: Tensor, noise: Tensor, sigma_data: Tensor | float
) -> Tensor:
    """Mean over the batch of ``lambda(sigma) ||D(x0 + sigma eps; sigma) - x0||^2 / n`` (scalar).

    Dividing by ``n`` makes it a per-coordinate mean: with ``F = 0`` and data of per-coordinate
    variance ``sd^2`` its expectation is exactly 1 at every sigma, so a loss below 1 is learning.
    ``noise`` is the standard normal ``eps``, drawn by the caller.
    """
    x = x0 + sigma[:, None] * noise
    denoised = precondition(backbone, x, sigma, sigma_data)
    weight = edm_loss_weight(sigma, sigma_data)
    return (weight[:, None] * (denoised - x0).square()).mean()


class Preconditioned(nn.Module):
    """An ``nn.Module`` ``D(x, sigma)`` around a backbone module ``F(x_in, c_noise)`` (spec section 12).

    ``sigma`` may be a float or a (M,) tensor. ``x`` of any floating dtype: ``F`` runs in the
    backbone's dtype and the skip connection in the dtype of ``x``, so the sampler's float64 state
    keeps its precision at large sigma.
    """

    def __init__(self, backbone: nn.Module, sigma_data: float) -> None:
        super().__init__()
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data={sigma_data} must be a positive finite number")
        self.backbone = backbone
        self.sigma_data = float(sigma_data)

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = edm_scalings(sig, self.sigma_data)
        p = next(self.backbone.parameters())
        f = self.backbone((c_in[:, None] * x).to(p.dtype), c_noise.to(p.dtype)).to(x.dtype)
        return c_skip[:, None] * x + c_out[:, None] * f
