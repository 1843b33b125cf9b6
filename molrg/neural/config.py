"""Typed configuration of a neural diffusion fit (spec section 12), with a JSON round trip.

One frozen dataclass holds the network (backbone F), the training recipe and the data split. The
architecture-dependent defaults are resolved at construction, so ``to_dict()`` always holds the
concrete values that were used (``width=None`` becomes 256 for an MLP, 32 for a U-Net).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = ["ARCHITECTURES", "LR_SCHEDULES", "SPLITS", "NeuralConfig", "image_layout"]

ARCHITECTURES = ("mlp", "unet")
LR_SCHEDULES = ("cosine", "constant")
SPLITS = ("none", "halves")

_DEFAULT_WIDTH = {"mlp": 256, "unet": 32}
_DEFAULT_DEPTH = {"mlp": 3, "unet": 2}


@dataclass(frozen=True)
class NeuralConfig:
    """Network, training recipe and split of a neural fit (spec section 12).

    Network
        architecture : "mlp" (any n) or "unet" (square images, n = channels * r^2)
        width : MLP hidden width, or U-Net channels at the top resolution (None: 256 / 32)
        depth : MLP hidden layers, or U-Net resolutions, 1 or 2 (None: 3 / 2)
        channels : U-Net image channels c of the (c, r, r) layout (None: 1 if n is a square, else 3)
        emb_dim : size of the sinusoidal embedding of c_noise
    Training
        steps, batch_size, lr : Adam, fixed number of steps, peak learning rate. Measured on
            K = 2, n = 48, d = 4 with 2,000 cosine steps: 1e-3 and 3e-3 left samples off the
            subspaces at N_k = 256; 1e-2 diverged once at N_k = 4 (step ~700) without clipping;
            5e-3 (no clip) and 1e-2 with grad_clip 1 both gave memorised 0.99 at N_k = 4 and
            generalisation 0.95 at N_k = 256. Default 5e-3 with grad_clip 1.
        lr_schedule : "cosine" (lr -> 0 at the last step) or "constant"
        ema : EMA decay of the weights used for denoising (0 = no EMA)
        grad_clip : clip each member's own gradient norm to this value (0 = off; default 1); per member, so
            members stay independent (a global clip over the stack would couple them)
        sigma_data : EDM's sd; None takes each member's RMS per coordinate ``sqrt(mean X^2)``
        p_mean, p_std : ``ln sigma ~ N(p_mean, p_std^2)`` training noise levels
    Split
        split : "none" (one member on all data) or "halves" (two members on disjoint halves)
        seed : seeds every member's initialisation, batches, sigmas and noise
    """

    architecture: Literal["mlp", "unet"] = "mlp"
    width: int | None = None
    depth: int | None = None
    channels: int | None = None
    emb_dim: int = 64
    steps: int = 2000
    batch_size: int = 256
    lr: float = 5e-3
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    ema: float = 0.0
    grad_clip: float = 1.0
    sigma_data: float | None = None
    p_mean: float = -1.2
    p_std: float = 1.2
    split: Literal["none", "halves"] = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={self.architecture!r}: choose one of {ARCHITECTURES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r}: choose one of {LR_SCHEDULES}")
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r}: choose one of {SPLITS}")
        if self.width is None:
            object.__setattr__(self, "width", _DEFAULT_WIDTH[self.architecture])
        if self.depth is None:
            object.__setattr__(self, "depth", _DEFAULT_DEPTH[self.architecture])
        for name in ("width", "depth", "emb_dim", "steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim={self.emb_dim} must be even (sin and cos halves)")
        if self.architecture == "unet" and self.depth not in (1, 2):
            raise ValueError(f"depth={self.depth}: a unet has 1 or 2 resolutions")
        if self.channels is not None and (isinstance(self.channels, bool) or self.channels < 1):
            raise ValueError(f"channels={self.channels!r} must be an integer >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr={self.lr} must be > 0")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema={self.ema} must be in [0, 1)")
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise ValueError(f"grad_clip={self.grad_clip} must be >= 0 (0 = off)")
        if self.sigma_data is not None and not (math.isfinite(self.sigma_data) and self.sigma_data > 0):
            raise ValueError(f"sigma_data={self.sigma_data} must be > 0")
        if not (math.isfinite(self.p_std) and self.p_std > 0 and math.isfinite(self.p_mean)):
            raise ValueError(f"p_mean={self.p_mean}, p_std={self.p_std}: need finite values, p_std > 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} must be an integer >= 0")

    @property
    def n_members(self) -> int:
        """Members trained by one fit: 2 for ``split="halves"``, else 1."""
        return 2 if self.split == "halves" else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field (defaults resolved)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NeuralConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (no silent drift)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown NeuralConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NeuralConfig:
        return cls.from_dict(json.loads(text))


def image_layout(n: int, channels: int | None = None) -> tuple[int, int]:
    """``(c, r)`` with ``n = c r^2`` for the U-Net (spec section 12); raises if n has no such layout."""
    candidates = [channels] if channels is not None else [1, 3]
    for c in candidates:
        if n % c == 0:
            r = math.isqrt(n // c)
            if r * r * c == n:
                return c, r
    raise ValueError(
        f"unet needs square images, n = channels * r^2; n={n} has no such layout for channels="
        f"{channels if channels is not None else '1 or 3'}"
    )
