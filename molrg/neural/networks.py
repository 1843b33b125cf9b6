"""Backbones ``F(x_in, c_noise)`` of the EDM-preconditioned denoiser (spec section 12).

Both map ``x_in`` of shape (M, n) and ``c_noise`` of shape (M,) to (M, n) and are written with
ops that ``torch.func.vmap`` batches (Linear, Conv2d, GroupNorm, SiLU, pooling, nearest
upsampling), so B members run as one stacked program (:mod:`molrg.neural.ensemble`).

* ``mlp``: ``depth`` hidden layers of ``width``, SiLU; a sinusoidal embedding of ``c_noise`` goes
  through one Linear + SiLU and enters every hidden layer through its own Linear as a scale and a
  shift (FiLM: ``h = silu((W h + b) (1 + scale) + shift)``). Measured on K = 2, n = 48, d = 4,
  N_k = 256 (2,000 steps, lr 1e-2): an additive embedding left Heun samples with median relative
  off-subspace residual 0.058 (p90 0.21), the scale-and-shift one 0.023 (p90 0.064).
* ``unet``: square images, ``n = c r^2`` read channel-first (index ``(ch * r + row) * r + col``;
  8x8 digits are row-major with c = 1). Residual blocks (GroupNorm, SiLU, 3x3 conv; the noise
  embedding scales and shifts the second GroupNorm's output), one or two resolutions (average pooling down, nearest up,
  skip connections concatenated). No BatchNorm: members and samples stay independent.

Initialisation draws from an explicit ``torch.Generator`` (:func:`init_backbone`), never from the
global RNG: a member's weights depend only on its seed. Output layers start at zero, so ``F = 0``
and ``D(x; sigma) = c_skip x`` at step 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from molrg.neural.config import NeuralConfig, image_layout

__all__ = ["MLP", "UNet", "build_backbone", "init_backbone", "sinusoidal_embedding"]

_MAX_FREQ = 100.0  # c_noise = ln(sigma)/4 spans about [-2, 1.1] for sigma in [0.002, 80]


def sinusoidal_embedding(c_noise: Tensor, dim: int) -> Tensor:
    """``[cos(f_j c), sin(f_j c)]`` with ``dim/2`` frequencies ``f_j`` geometric in [1, 100]: (M, dim)."""
    half = dim // 2
    j = torch.arange(half, dtype=c_noise.dtype, device=c_noise.device)
    freqs = torch.exp(j * (math.log(_MAX_FREQ) / max(half - 1, 1)))
    arg = c_noise[:, None] * freqs[None, :]
    return torch.cat([arg.cos(), arg.sin()], dim=-1)


class MLP(nn.Module):
    """``depth`` hidden SiLU layers of ``width``, each scaled and shifted by the noise embedding."""

    def __init__(self, n: int, width: int = 256, depth: int = 3, emb_dim: int = 64) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.emb = nn.Linear(emb_dim, emb_dim)
        self.layers = nn.ModuleList([nn.Linear(n if i == 0 else width, width) for i in range(depth)])
        self.emb_proj = nn.ModuleList([nn.Linear(emb_dim, 2 * width) for _ in range(depth)])
        self.out = nn.Linear(width, n)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        e = nnf.silu(self.emb(sinusoidal_embedding(c_noise, self.emb_dim)))
        h = x
        for layer, proj in zip(self.layers, self.emb_proj, strict=True):
            scale, shift = proj(e).chunk(2, dim=-1)
            h = nnf.silu(layer(h) * (1.0 + scale) + shift)
        return self.out(h)


def _groups(ch: int) -> int:
    return next(g for g in (8, 4, 2, 1) if ch % g == 0)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, GroupNorm scaled/shifted by the noise embedding, SiLU-conv, (1x1) skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(nnf.silu(self.norm1(x)))
        scale, shift = self.emb(e)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(nnf.silu(self.norm2(h) * (1.0 + scale) + shift))
        return (x if self.skip is None else self.skip(x)) + h


class UNet(nn.Module):
    """A small U-Net on (c, r, r) images flattened to n = c r^2, one or two resolutions (section 12)."""

    def __init__(self, channels: int, resolution: int, width: int = 32, depth: int = 2, emb_dim: int = 64):
        super().__init__()
        if depth not in (1, 2):
            raise ValueError(f"depth={depth}: a unet has 1 or 2 resolutions")
        if depth == 2 and resolution % 2:
            raise ValueError(f"a 2-resolution unet needs an even image size, got r={resolution}")
        self.c, self.r, self.depth, self.emb_dim = channels, resolution, depth, emb_dim
        w = width
        self.emb = nn.Linear(emb_dim, emb_dim)
        self.conv_in = nn.Conv2d(channels, w, 3, padding=1)
        self.enc1 = ResBlock(w, w, emb_dim)
        if depth == 2:
            self.enc2 = ResBlock(w, 2 * w, emb_dim)
            self.mid = ResBlock(2 * w, 2 * w, emb_dim)
            self.dec2 = ResBlock(4 * w, 2 * w, emb_dim)
            self.dec1 = ResBlock(3 * w, w, emb_dim)
        else:
            self.mid = ResBlock(w, w, emb_dim)
            self.dec1 = ResBlock(2 * w, w, emb_dim)
        self.norm_out = nn.GroupNorm(_groups(w), w)
        self.out = nn.Conv2d(w, channels, 3, padding=1)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        M = x.shape[0]
        e = nnf.silu(self.emb(sinusoidal_embedding(c_noise, self.emb_dim)))
        h0 = self.enc1(self.conv_in(x.reshape(M, self.c, self.r, self.r)), e)
        if self.depth == 2:
            h1 = self.enc2(nnf.avg_pool2d(h0, 2), e)
            h = self.mid(h1, e)
            h = self.dec2(torch.cat([h, h1], dim=1), e)
            h = nnf.interpolate(h, scale_factor=2.0, mode="nearest")
        else:
            h = self.mid(h0, e)
        h = self.dec1(torch.cat([h, h0], dim=1), e)
        return self.out(nnf.silu(self.norm_out(h))).reshape(M, -1)


def build_backbone(config: NeuralConfig, n: int) -> nn.Module:
    """The backbone F of ``config`` for ambient dimension n (parameters not yet initialised)."""
    assert config.width is not None and config.depth is not None  # resolved by NeuralConfig
    if config.architecture == "mlp":
        return MLP(n, config.width, config.depth, config.emb_dim)
    c, r = image_layout(n, config.channels)
    return UNet(c, r, config.width, config.depth, config.emb_dim)


@torch.no_grad()
def init_backbone(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Initialise in place from ``generator`` only: weights ``U(-sqrt(3/fan_in), sqrt(3/fan_in))``
    (unit-variance pre-activations), biases 0, norms (1, 0), the ``out`` layer 0. Returns module."""
    out_layer = getattr(module, "out", None)
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            if m is out_layer:
                m.weight.zero_()
            else:
                fan_in = m.weight[0].numel()
                bound = math.sqrt(3.0 / fan_in)
                w = torch.rand(m.weight.shape, generator=generator, dtype=torch.float64, device=generator.device)
                m.weight.copy_((2.0 * w - 1.0) * bound)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.GroupNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()
    return module
