"""Estimator facade for neural diffusion models (spec section 12).

    model = NeuralDiffusion(NeuralConfig(steps=2000), device="cpu").fit(X, callback=cb)
    model.sample(256, seed=0, sampler="heun")            # (256, n) float64
    tensors = model.state_dict()                          # save with safetensors.torch.save_file
    again = NeuralDiffusion.from_state_dict(model.config, tensors)   # the same denoiser

``split="halves"`` trains two members (one ensemble of 2) on disjoint halves of X, for
reproducibility (section 13): ``sample(..., member=b)`` and :meth:`sample_members`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molrg.neural.config import NeuralConfig
from molrg.neural.ensemble import SPLIT_STREAM, StackedNetworks, stream_seed
from molrg.neural.references import Denoiser, _Sampleable
from molrg.neural.training import TrainCallback, train_ensemble

__all__ = ["NeuralDiffusion", "member_seeds", "split_indices"]

_PARAM_PREFIX = "net."
_INDEX_PREFIX = "split.index."


def member_seeds(seed: int, n_members: int) -> list[int]:
    """Seeds of a fit's members: ``seed`` for member 0, ``seed + b`` for member b."""
    return [int(seed) + b for b in range(n_members)]


def split_indices(n_samples: int, split: str, seed: int) -> list[Tensor]:
    """Training-set rows per member: ``[arange(N)]``, or two disjoint halves of a seeded permutation
    (``N // 2`` rows each; with N odd one row is left out)."""
    if split == "none":
        return [torch.arange(n_samples)]
    if split != "halves":
        raise ValueError(f"split={split!r}: choose 'none' or 'halves'")
    if n_samples < 2:
        raise ValueError(f"split='halves' needs N >= 2 samples, got {n_samples}")
    perm = torch.randperm(n_samples, generator=torch.Generator().manual_seed(stream_seed(seed, SPLIT_STREAM)))
    h = n_samples // 2
    return [perm[:h].sort().values, perm[h : 2 * h].sort().values]


class NotFittedError(ValueError, RuntimeError):
    """The model was used before ``fit`` (or ``from_state_dict``)."""


class NeuralDiffusion(_Sampleable):
    """An EDM-preconditioned neural denoiser (mlp or unet backbone), trained as an ensemble (section 12).

    Parameters
    ----------
    config : NeuralConfig (default NeuralConfig()); keyword ``options`` override its fields
    device : where to train and sample (the worker passes "cuda" when it has it)
    dtype : training dtype of the weights (float32; float64 for exactness tests)
    """

    def __init__(
        self,
        config: NeuralConfig | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> None:
        base = config if config is not None else NeuralConfig()
        self.config = dataclasses.replace(base, **options) if options else base
        self.device = device
        self.dtype = dtype
        self.networks_: StackedNetworks | None = None
        self.train_indices_: list[Tensor] = []
        self.loss_history_: Tensor | None = None
        self.steps_done_ = 0
        self.stopped_ = False
        self.fit_seconds_ = 0.0

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X: Any, callback: TrainCallback | None = None, *, callback_every: int = 1) -> NeuralDiffusion:
        """Train on X (N, n). ``callback(TrainProgress)`` after each step; True stops training."""
        Xt = torch.as_tensor(np.asarray(X) if not isinstance(X, Tensor) else X)
        if Xt.ndim != 2 or Xt.shape[0] < 1:
            raise ValueError(f"X: expected a 2-D array (N >= 1, n), got shape {tuple(Xt.shape)}")
        if not bool(torch.isfinite(Xt).all()):
            raise ValueError("X: contains NaN or inf")
        Xt = Xt.to(torch.float64)
        cfg = self.config
        self.train_indices_ = split_indices(int(Xt.shape[0]), cfg.split, cfg.seed)
        datasets = [Xt[idx] for idx in self.train_indices_]
        result = train_ensemble(
            cfg, datasets, member_seeds(cfg.seed, len(datasets)), device=self.device, dtype=self.dtype,
            callback=callback, callback_every=callback_every,
        )
        self.networks_ = result.networks
        self.loss_history_ = result.loss_history
        self.steps_done_ = result.steps_done
        self.stopped_ = result.stopped
        self.fit_seconds_ = result.seconds
        return self

    # -- use -----------------------------------------------------------------------------------
    @property
    def networks(self) -> StackedNetworks:
        if self.networks_ is None:
            raise NotFittedError("NeuralDiffusion: call fit(X) or from_state_dict first")
        return self.networks_

    @property
    def ambient_dim(self) -> int:  # type: ignore[override]
        return self.networks.n

    @property
    def n_members(self) -> int:
        return self.networks.n_members

    def denoiser(self, member: int = 0) -> Denoiser:
        """Member ``member``'s ``D(x (M, n), sigma float or (M,)) -> (M, n)``, differentiable in x."""
        return self.networks.member_denoiser(member)

    def sample_members(self, n_samples: int, seed: int = 0, sampler: str = "heun", steps: int = 18,
                       **kwargs: Any) -> Tensor:
        """Every member's samples from the same initial noise (and SDE noise): (B, n_samples, n)."""
        return torch.stack([
            self.sample(n_samples, seed=seed, sampler=sampler, steps=steps, member=b, **kwargs)
            for b in range(self.n_members)
        ])

    def training_rows(self, member: int = 0) -> Tensor:
        """Rows of the fit's X that member ``member`` was trained on (int64)."""
        if not self.train_indices_:
            raise NotFittedError("NeuralDiffusion: call fit(X) or from_state_dict first")
        return self.train_indices_[member]

    # -- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Flat dict of contiguous CPU tensors (safetensors-ready): ``net.<param>`` (B, ...) the
        denoising weights (EMA if used), ``sigma_data`` (B,), ``ambient_dim`` (1,) int64 and
        ``split.index.<b>`` the training rows of each member."""
        nets = self.networks
        out = {_PARAM_PREFIX + k: v.detach().cpu().contiguous().clone() for k, v in nets.params.items()}
        out["sigma_data"] = nets.sigma_data.detach().cpu().contiguous().clone()
        out["ambient_dim"] = torch.tensor([nets.n], dtype=torch.int64)
        for b, idx in enumerate(self.train_indices_):
            out[f"{_INDEX_PREFIX}{b}"] = idx.to(torch.int64).contiguous().clone()
        return out

    @classmethod
    def from_state_dict(
        cls, config: NeuralConfig, tensors: dict[str, Tensor], device: torch.device | str | None = None
    ) -> NeuralDiffusion:
        """Rebuild a fitted model from :meth:`state_dict` output and its config."""
        if "ambient_dim" not in tensors or "sigma_data" not in tensors:
            raise ValueError("tensors: missing 'ambient_dim' or 'sigma_data' (not a NeuralDiffusion state_dict)")
        params = {k[len(_PARAM_PREFIX):]: v for k, v in tensors.items() if k.startswith(_PARAM_PREFIX)}
        dtype = next(iter(params.values())).dtype if params else torch.float32
        model = cls(config, device=device, dtype=dtype)
        params = {k: v.to(device=device) for k, v in params.items()}
        model.networks_ = StackedNetworks(config, int(tensors["ambient_dim"][0]), params, tensors["sigma_data"])
        n_idx = sum(1 for k in tensors if k.startswith(_INDEX_PREFIX))
        model.train_indices_ = [tensors[f"{_INDEX_PREFIX}{b}"].to(torch.int64) for b in range(n_idx)]
        return model
