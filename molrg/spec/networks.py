"""The neural fit's options and the network's size, layout and memory, torch-free (spec section 12)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from molrg.spec.base import MAX_AMBIENT_DIM, Architecture, FieldIssue, LRSchedule, _Spec


class NeuralOptions(_Spec):
    """An EDM-preconditioned network denoiser trained by denoising score matching (section 12).

    Exactly the fields of ``molrg.neural.NeuralConfig`` but its seed (the fit's seed), with its defaults;
    the worker builds the config from these options in one place (``workers.neural.neural_config``).
    """

    architecture: Architecture = Field("mlp", description="mlp (any n) or unet (square images, n = c r^2).")
    width: int | None = Field(None, ge=1, le=8192, description="mlp hidden width, or unet channels at the top "
                                                              "resolution; null: 256 for mlp, 32 for unet.")
    depth: int | None = Field(None, ge=1, le=32, description="mlp hidden layers, or unet resolutions (1 or 2); "
                                                            "null: 3 for mlp, 2 for unet.")
    channels: int | None = Field(None, ge=1, le=MAX_AMBIENT_DIM,
                                 description="unet image channels c of the (c, r, r) layout of n = c r^2; "
                                             "null: 1 if n is a square, else 3.")
    emb_dim: int = Field(64, ge=2, le=1024, multiple_of=2,
                         description="Size of the sinusoidal noise embedding (even: sin and cos halves).")
    steps: int = Field(2000, ge=1, le=1_000_000, description="Adam steps (fixed; no early stop).")
    batch_size: int = Field(256, ge=1, le=65_536, description="Training samples per step (drawn with replacement).")
    lr: float = Field(5e-3, gt=0, le=1, description="Peak Adam learning rate.")
    lr_schedule: LRSchedule = Field("cosine", description="cosine decay to 0 at the last step, or constant.")
    ema: float = Field(0.0, ge=0, lt=1, description="EMA decay of the weights used for denoising (e.g. 0.999); "
                                                    "0: no EMA.")
    grad_clip: float = Field(1.0, ge=0, le=1e6, description="Clip each network's own gradient norm (0: off).")
    sigma_data: float | None = Field(None, gt=0, le=1e6,
                                     description="EDM sigma_data; null: the data's RMS per coordinate.")
    p_mean: float = Field(-1.2, ge=-20, le=20, description="Training noise levels: ln sigma ~ N(p_mean, p_std^2).")
    p_std: float = Field(1.2, gt=0, le=20, description="Training noise levels: ln sigma ~ N(p_mean, p_std^2).")
    split: Literal["none", "halves"] = Field(
        "none", description="none: one network on all data; halves: two networks on disjoint halves "
                            "(reproducibility).")


def _square_image(n: int) -> tuple[int, int] | None:
    """(c, r) with n = c r^2 and c in (1, 3), if n is a square grey or colour image (unique when it exists)."""
    for c in (1, 3):
        if n % c == 0:
            r = math.isqrt(n // c)
            if r * r * c == n and r >= 2:
                return c, r
    return None


def image_shape(n: int) -> tuple[int, int, int]:
    """(c, r, r) of data with n = c r^2 (for the unet); ValueError otherwise."""
    shape = _square_image(n)
    if shape is None:
        raise ValueError(f"architecture unet needs square images, n = c r^2 with c in (1, 3); got n = {n}")
    return shape[0], shape[1], shape[1]


def unet_layout(n: int, channels: int | None = None) -> tuple[int, int] | None:
    """(c, r) with n = c r^2 as the unet reads it (``molrg.neural.config.image_layout``): c = channels,
    else 1 then 3; None when there is no such layout."""
    for c in [channels] if channels is not None else [1, 3]:
        if n % c == 0:
            r = math.isqrt(n // c)
            if r * r * c == n:
                return c, r
    return None


MAX_NEURAL_PARAMETERS = 2**27  # per network: ~134M (0.5 GiB float32; ~2.7 GiB with gradients, Adam and EMA)


def _resblock_parameters(cin: int, cout: int, e: int) -> int:
    skip = cin * cout + cout if cin != cout else 0
    return 2 * cin + 9 * cin * cout + cout + 2 * e * cout + 2 * cout + 2 * cout + 9 * cout * cout + cout + skip


def neural_parameter_count(options: NeuralOptions, n: int) -> int:
    """Parameters of one network of ``options`` on ambient dimension n (as ``molrg.neural.networks`` builds it;
    the unet needs a layout, :func:`unet_layout`)."""
    e = options.emb_dim
    if options.architecture == "mlp":
        w = options.width if options.width is not None else 256
        depth = options.depth if options.depth is not None else 3
        hidden = n * w + w + (depth - 1) * (w * w + w)
        return e * e + e + hidden + depth * (2 * e * w + 2 * w) + w * n + n
    layout = unet_layout(n, options.channels)
    if layout is None:
        raise ValueError(f"n = {n} has no unet layout")
    c = layout[0]
    w = options.width if options.width is not None else 32
    depth = options.depth if options.depth is not None else 2
    blocks = [(w, w), (w, 2 * w), (2 * w, 2 * w), (4 * w, 2 * w), (3 * w, w)] if depth == 2 \
        else [(w, w), (w, w), (2 * w, w)]
    body = sum(_resblock_parameters(a, b, e) for a, b in blocks)
    return e * e + e + 9 * c * w + w + body + 2 * w + 9 * w * c + c


def neural_member_bytes(options: NeuralOptions, n: int, n_samples: int, itemsize: int = 4) -> int:
    """Upper estimate of one ensemble member's training memory on n features and N samples (section 14).

    Weights, gradients, two Adam moments and the EMA copy; the saved activations of one batch (an mlp
    keeps ~8 tensors of its width per hidden layer, a unet ~12 feature maps per channel of its widest
    resolution); the member's drawn indices, noise levels and noise for ``molrg.neural.training``'s
    draw chunk (<= 2^20 elements); its padded data; and a 1.5x allowance for temporaries.
    """
    P = neural_parameter_count(options, n)
    copies = 4 + (1 if options.ema > 0 else 0)
    bs = options.batch_size
    if options.architecture == "mlp":
        w = options.width if options.width is not None else 256
        depth = options.depth if options.depth is not None else 3
        act = bs * (2 * n + 8 * depth * w + 4 * options.emb_dim)
    else:
        w = options.width if options.width is not None else 32
        layout = unet_layout(n, options.channels) or (1, max(1, math.isqrt(n)))
        act = bs * 12 * 2 * w * layout[1] ** 2
    draws = min(64, max(1, (1 << 20) // max(1, bs * n))) * bs * (n + 3)
    return int(1.5 * itemsize * (copies * P + act + draws + n_samples * n))


def _unet_errors(options: NeuralOptions, n: int) -> list[FieldIssue]:
    layout = unet_layout(n, options.channels)
    if layout is None:
        given = f"channels={options.channels}" if options.channels is not None else "channels 1 or 3"
        return [FieldIssue("options.channels" if options.channels is not None else "options.architecture",
                           f"unet needs square images, n = c r^2; n = {n} has no such layout with {given}")]
    depth = options.depth if options.depth is not None else 2
    if depth not in (1, 2):
        return [FieldIssue("options.depth", f"depth={depth}: a unet has 1 or 2 resolutions")]
    if depth == 2 and layout[1] % 2:
        return [FieldIssue("options.depth", f"a 2-resolution unet needs an even image size; n = {n} is "
                                            f"{layout[0]} x {layout[1]} x {layout[1]} (use depth 1)")]
    return []
