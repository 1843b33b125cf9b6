"""B networks of one architecture as one stacked tensor program (spec section 12).

The members' parameters are stacked along a leading axis (``torch.func.stack_module_state``) and
one backbone skeleton on the ``meta`` device is evaluated with ``torch.func.functional_call``
under ``torch.func.vmap``: every layer runs once for all members as a batched matmul / grouped
convolution. Nothing couples the members: member b's outputs depend only on its own slice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from molrg.neural.config import NeuralConfig
from molrg.neural.networks import build_backbone, init_backbone
from molrg.neural.precond import Preconditioned, edm_scalings

__all__ = ["StackedNetworks", "stream_seed"]

Denoiser = Callable[[Tensor, Tensor | float], Tensor]

INIT_STREAM = 0
TRAIN_STREAM = 1
SPLIT_STREAM = 2


def stream_seed(seed: int, stream: int) -> int:
    """A 63-bit seed for stream ``stream`` of integer ``seed`` (independent streams per purpose)."""
    state = np.random.SeedSequence([int(seed), int(stream)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class StackedNetworks:
    """B members' parameters ``params[name]`` of shape (B, ...), their ``sigma_data`` (B,), and
    the vmapped EDM denoiser over them.

    Parameters
    ----------
    config : the network fields of the config (architecture, width, depth, channels, emb_dim)
    n : ambient dimension
    params : stacked parameters, one (B, ...) tensor per parameter name of the backbone
    sigma_data : Tensor (B,), float64
    """

    def __init__(self, config: NeuralConfig, n: int, params: dict[str, Tensor], sigma_data: Tensor) -> None:
        self.config = config
        self.n = int(n)
        self.skeleton = build_backbone(config, self.n).to("meta")
        expected = dict(self.skeleton.named_parameters())
        if set(params) != set(expected):
            raise ValueError(f"params: expected names {sorted(expected)}, got {sorted(params)}")
        B = next(iter(params.values())).shape[0]
        for name, p in params.items():
            if tuple(p.shape) != (B, *expected[name].shape):
                raise ValueError(f"params[{name!r}]: expected shape {(B, *expected[name].shape)}, got {tuple(p.shape)}")
        self.params = params
        self.sigma_data = torch.as_tensor(sigma_data, dtype=torch.float64).reshape(-1).cpu()
        if self.sigma_data.shape[0] != B:
            raise ValueError(f"sigma_data: expected {B} entries, got {self.sigma_data.shape[0]}")

    @classmethod
    def initialise(
        cls,
        config: NeuralConfig,
        n: int,
        seeds: Sequence[int],
        sigma_data: Sequence[float] | Tensor,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> StackedNetworks:
        """Fresh members, member b initialised from ``stream_seed(seeds[b], INIT_STREAM)`` only."""
        if len(seeds) < 1:
            raise ValueError("seeds: need at least one member")
        modules = []
        for s in seeds:
            net = build_backbone(config, int(n)).to(dtype=torch.float64)
            init_backbone(net, torch.Generator().manual_seed(stream_seed(int(s), INIT_STREAM)))
            modules.append(net.to(device=device, dtype=dtype))
        params, _ = stack_module_state(modules)
        params = {k: v.detach().clone() for k, v in params.items()}
        return cls(config, n, params, torch.as_tensor(sigma_data, dtype=torch.float64))

    # -- properties ----------------------------------------------------------------------------
    @property
    def n_members(self) -> int:
        return int(next(iter(self.params.values())).shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.params.values())).dtype

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    @property
    def n_parameters(self) -> int:
        """Parameters per member."""
        return sum(int(p[0].numel()) for p in self.params.values())

    # -- evaluation ----------------------------------------------------------------------------
    def backbone(self, params: dict[str, Tensor], x_in: Tensor, c_noise: Tensor) -> Tensor:
        """One member's ``F(x_in (M, n), c_noise (M,))`` with its (unstacked) params."""
        return functional_call(self.skeleton, params, (x_in, c_noise))

    def _denoise_one(self, params: dict[str, Tensor], x: Tensor, sigma: Tensor, sd: Tensor) -> Tensor:
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
        dt = next(iter(params.values())).dtype
        f = self.backbone(params, (c_in[:, None] * x).to(dt), c_noise.to(dt)).to(x.dtype)
        return c_skip[:, None] * x + c_out[:, None] * f

    def denoise_members(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Every member's ``D_b(x; sigma)``: x (M, n) shared or (B, M, n); returns (B, M, n).

        Runs in the dtype of ``x`` outside F (keep float64 for sampling), F in the params' dtype.
        """
        xb = x.to(self.device)
        shared = xb.ndim == 2
        M = xb.shape[-2]
        sig = torch.as_tensor(sigma, dtype=xb.dtype, device=self.device)
        sig = sig.expand(M) if sig.ndim <= 1 else sig
        sd = self.sigma_data.to(device=self.device, dtype=xb.dtype)
        in_x = None if shared else 0
        in_s = 0 if sig.ndim == 2 else None
        fn = vmap(self._denoise_one, in_dims=(0, in_x, in_s, 0))
        return fn(self.params, xb, sig, sd)

    def member_params(self, member: int) -> dict[str, Tensor]:
        if not 0 <= member < self.n_members:
            raise ValueError(f"member={member} must be in [0, {self.n_members})")
        return {k: v[member] for k, v in self.params.items()}

    def member_denoiser(self, member: int = 0) -> Denoiser:
        """``D(x (M, n), sigma float or (M,)) -> (M, n)`` of one member, in the dtype of x."""
        p = self.member_params(member)
        sd = self.sigma_data[member]

        def denoiser(x: Tensor, sigma: Tensor | float) -> Tensor:
            xd = x.to(self.device)
            sig = torch.as_tensor(sigma, dtype=xd.dtype, device=xd.device).expand(xd.shape[0])
            return self._denoise_one(p, xd, sig, sd.to(device=xd.device, dtype=xd.dtype)).to(x.device)

        return denoiser

    def member_module(self, member: int = 0) -> Preconditioned:
        """Member ``member`` as a standalone ``nn.Module`` ``D(x, sigma)`` (a copy of its weights)."""
        net = build_backbone(self.config, self.n).to(device=self.device, dtype=self.dtype)
        net.load_state_dict({k: v.detach().clone() for k, v in self.member_params(member).items()})
        return Preconditioned(net, float(self.sigma_data[member]))

    def copy(self) -> StackedNetworks:
        return StackedNetworks(
            self.config, self.n, {k: v.detach().clone() for k, v in self.params.items()}, self.sigma_data.clone()
        )

    def subset(self, members: Sequence[int]) -> StackedNetworks:
        idx = torch.as_tensor(list(members), dtype=torch.long, device=self.device)
        return StackedNetworks(
            copy.copy(self.config), self.n, {k: v[idx].clone() for k, v in self.params.items()},
            self.sigma_data[idx.cpu()].clone(),
        )
