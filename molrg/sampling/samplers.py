"""Reverse-time samplers for a denoiser ``D(x, sigma) ~ E[x0 | x0 + sigma eps]`` (spec section 8).

k-diffusion-style stateless functions ``sampler(denoiser, x, sigmas, *, generator, callback)``:
``x`` is the initial noise at ``sigmas[0]``, ``sigmas`` a decreasing grid ending in 0 (see
:func:`molrg.sampling.schedules.get_sigmas_karras`). The state is float64 (as in EDM); the denoiser receives
float64 ``x`` of shape (M, n) and float64 ``sigma`` of shape (M,), and its output is cast back to
float64. A model trained with a VP schedule is used through ``sigma = gamma_t / s_t``, ``x / s_t``.

Reproducibility: sample i's initial noise and its stochastic-sampler noise come from generators
seeded with a hash of ``(seed, i)`` only, so a sample does not depend on the batch it was drawn in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molrg.sampling.schedules import get_sigmas_karras

__all__ = [
    "SAMPLERS",
    "initial_noise",
    "per_sample_generators",
    "sample",
    "sample_ddim",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_seed",
]

Denoiser = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[dict[str, Any]], Any]
GeneratorLike = torch.Generator | Sequence[torch.Generator] | None

_INITIAL_STREAM = 0
_SDE_STREAM = 1


def sample_seed(seed: int, index: int, stream: int = _INITIAL_STREAM) -> int:
    """Seed of sample ``index``'s noise stream, a hash of ``(seed, index, stream)`` (spec section 8)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed={seed} and index={index} must be >= 0")
    state = np.random.SeedSequence([int(seed), int(index), int(stream)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def per_sample_generators(
    n_samples: int, seed: int, stream: int = _SDE_STREAM, device: torch.device | str | None = None
) -> list[torch.Generator]:
    """One ``torch.Generator`` per sample, seeded from ``(seed, i, stream)`` (spec section 8)."""
    dev = torch.device("cpu") if device is None else torch.device(device)
    return [torch.Generator(device=dev).manual_seed(sample_seed(seed, i, stream)) for i in range(n_samples)]


def initial_noise(
    n_samples: int,
    n: int,
    seed: int,
    *,
    sigma_max: float = 80.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    offset: int = 0,
) -> Tensor:
    """``sigma_max * eps_i`` with ``eps_i`` depending only on ``(seed, offset + i)``: shape (n_samples, n)."""
    rows = [
        torch.randn(n, generator=torch.Generator().manual_seed(sample_seed(seed, offset + i)), dtype=torch.float64)
        for i in range(n_samples)
    ]
    eps = torch.stack(rows) if rows else torch.zeros(0, n, dtype=torch.float64)
    return (sigma_max * eps).to(device=device, dtype=dtype)


def _randn_like(x: Tensor, generator: GeneratorLike) -> Tensor:
    """Standard normal noise like x (M, n): per-sample generators, one shared generator, or fresh."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if len(generator) != x.shape[0]:
        raise ValueError(f"generator: got {len(generator)} per-sample generators for {x.shape[0]} samples")
    rows = [torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=g.device) for g in generator]
    return torch.stack(rows).to(x.device)


def _denoise(denoiser: Denoiser, x: Tensor, sigma: Tensor) -> Tensor:
    out = denoiser(x, sigma.expand(x.shape[0]))
    if out.shape != x.shape:
        raise ValueError(f"denoiser returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
    return out.to(torch.float64)


def _prepare(x: Tensor, sigmas: Tensor) -> tuple[Tensor, Tensor]:
    if x.ndim != 2:
        raise ValueError(f"x: expected shape (M, n), got {tuple(x.shape)}")
    if sigmas.ndim != 1 or sigmas.shape[0] < 2:
        raise ValueError(f"sigmas: expected a 1-D grid with at least 2 entries, got {tuple(sigmas.shape)}")
    return x.to(torch.float64), sigmas.to(device=x.device, dtype=torch.float64)


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    generator: GeneratorLike = None,
    callback: Callback | None = None,
) -> Tensor:
    """Deterministic EDM Heun sampler (Karras et al. 2022, Algorithm 2, no churn) (spec section 8).

    Parameters
    ----------
    x : Tensor of shape (M, n), initial noise at ``sigmas[0]``
    sigmas : Tensor of shape (S + 1,), decreasing, last entry 0

    Returns
    -------
    Tensor of shape (M, n) in the dtype of ``x``
    """
    dtype = x.dtype
    x, sigmas = _prepare(x, sigmas)
    for i in range(sigmas.shape[0] - 1):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        denoised = _denoise(denoiser, x, s_cur)
        d = (x - denoised) / s_cur
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s_cur, "sigma_hat": s_cur, "denoised": denoised})
        x_next = x + (s_next - s_cur) * d
        if s_next > 0:  # second-order correction, skipped on the final step to sigma = 0
            d_next = (x_next - _denoise(denoiser, x_next, s_next)) / s_next
            x_next = x + (s_next - s_cur) * 0.5 * (d + d_next)
        x = x_next
    return x.to(dtype)


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    generator: GeneratorLike = None,
    callback: Callback | None = None,
) -> Tensor:
    """Deterministic DDIM = Euler on the probability-flow ODE in sigma (spec section 8): (M, n)."""
    dtype = x.dtype
    x, sigmas = _prepare(x, sigmas)
    for i in range(sigmas.shape[0] - 1):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        denoised = _denoise(denoiser, x, s_cur)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s_cur, "sigma_hat": s_cur, "denoised": denoised})
        # x + (s_next - s_cur) (x - D)/s_cur, written so that s_next = 0 returns D exactly
        x = denoised + (s_next / s_cur) * (x - denoised)
    return x.to(dtype)


def _ancestral_step(s_from: Tensor, s_to: Tensor, eta: float) -> tuple[Tensor, Tensor]:
    """(sigma_down, sigma_up) with sigma_down^2 + sigma_up^2 = s_to^2 (k-diffusion convention)."""
    if s_to <= 0:
        return s_to, s_to
    up = torch.minimum(s_to, eta * (s_to**2 * (s_from**2 - s_to**2) / s_from**2).sqrt())
    return (s_to**2 - up**2).sqrt(), up


@torch.no_grad()
def sample_euler_maruyama(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    generator: GeneratorLike = None,
    callback: Callback | None = None,
    eta: float = 1.0,
) -> Tensor:
    """Stochastic reverse-SDE sampler in ancestral form (DDPM-like; k-diffusion eta=1) (spec section 8).

    Each step moves deterministically to ``sigma_down`` and adds fresh noise of scale ``sigma_up``;
    ``generator`` is one generator, or a list of per-sample generators (batch-independent samples).
    """
    dtype = x.dtype
    x, sigmas = _prepare(x, sigmas)
    for i in range(sigmas.shape[0] - 1):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        denoised = _denoise(denoiser, x, s_cur)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s_cur, "sigma_hat": s_cur, "denoised": denoised})
        s_down, s_up = _ancestral_step(s_cur, s_next, eta)
        x = denoised + (s_down / s_cur) * (x - denoised)
        if s_next > 0:
            x = x + s_up * _randn_like(x, generator)
    return x.to(dtype)


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "heun": sample_heun,
    "ddim": sample_ddim,
    "sde": sample_euler_maruyama,
}


def sample(
    denoiser: Denoiser,
    n_samples: int,
    ambient_dim: int,
    *,
    sampler: str = "heun",
    steps: int = 18,
    seed: int = 0,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    callback: Callback | None = None,
) -> Tensor:
    """Draw ``n_samples`` samples with a Karras grid of ``steps`` noise levels (spec section 8).

    Returns
    -------
    Tensor of shape (n_samples, ambient_dim); sample i depends only on ``(seed, i)``
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is unknown; choose one of {sorted(SAMPLERS)}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps!r} must be an integer >= 1")
    if n_samples < 1 or ambient_dim < 1:
        raise ValueError(f"n_samples={n_samples} and ambient_dim={ambient_dim} must be >= 1")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0")
    sigmas = get_sigmas_karras(int(steps), sigma_min, sigma_max, rho, device=device)
    x = initial_noise(n_samples, ambient_dim, seed, sigma_max=float(sigmas[0]), device=device)
    generator = per_sample_generators(n_samples, seed) if sampler == "sde" else None
    out = SAMPLERS[sampler](denoiser, x, sigmas, generator=generator, callback=callback)
    return out.to(dtype)
