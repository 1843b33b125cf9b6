"""Noise schedules ``x_t = s_t x0 + gamma_t eps`` (spec section 2) and sampling sigma grids.

Two conventions, both exposing ``s(t)``, ``gamma(t)``, ``sigma(t) = gamma_t / s_t`` and its inverse:

* VP: ``s_t = exp(-1/2 int_0^t beta)``, ``gamma_t = sqrt(1 - s_t^2)``, ``beta(t)`` linear in t.
* VE / EDM: the time *is* the noise level, ``s_t = 1``, ``gamma_t = sigma = t``.

Any ``(s_t, gamma_t)`` is the VE noise level ``sigma = gamma_t / s_t`` seen through ``x_t / s_t``,
which is how the samplers (VE convention, k-diffusion style) use a VP-trained model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SCHEDULES",
    "WEIGHTINGS",
    "EDMSchedule",
    "Schedule",
    "VESchedule",
    "VPSchedule",
    "get_schedule",
    "get_sigmas_karras",
    "loss_weight",
    "sample_edm_sigmas",
]

TensorLike = Tensor | float
SCHEDULES = ("vp", "ve", "edm")
WEIGHTINGS = ("unit", "edm")


class Schedule(Protocol):
    """What a schedule provides (spec section 2); ``t`` is a float or a tensor of times."""

    name: str

    def s(self, t: TensorLike) -> Tensor: ...

    def gamma(self, t: TensorLike) -> Tensor: ...

    def sigma(self, t: TensorLike) -> Tensor: ...

    def t_from_sigma(self, sigma: TensorLike) -> Tensor: ...

    def quadrature(self, n_nodes: int) -> tuple[Tensor, Tensor]: ...

    def sample_t(
        self, n: int, generator: torch.Generator, *, dtype: torch.dtype = ..., device: torch.device | str | None = ...
    ) -> Tensor: ...


def _t(t: TensorLike) -> Tensor:
    return t if isinstance(t, Tensor) else torch.tensor(float(t), dtype=torch.float64)


@dataclass(frozen=True)
class VPSchedule:
    """Variance-preserving schedule with linear ``beta(t)`` on ``t in [t_min, 1]`` (spec section 2)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3
    name: str = "vp"

    def beta(self, t: TensorLike) -> Tensor:
        """``beta(t) = beta_min + t (beta_max - beta_min)``."""
        return self.beta_min + _t(t) * (self.beta_max - self.beta_min)

    def integral_beta(self, t: TensorLike) -> Tensor:
        """``int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2``."""
        t = _t(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def s(self, t: TensorLike) -> Tensor:
        """Signal scale ``s_t = exp(-1/2 int_0^t beta)``."""
        return torch.exp(-0.5 * self.integral_beta(t))

    def gamma(self, t: TensorLike) -> Tensor:
        """Noise scale ``gamma_t = sqrt(1 - s_t^2)`` (via expm1, accurate at small t)."""
        return torch.sqrt(-torch.expm1(-self.integral_beta(t)))

    def sigma(self, t: TensorLike) -> Tensor:
        """Equivalent VE noise level ``gamma_t / s_t = sqrt(exp(int beta) - 1)``."""
        return torch.sqrt(torch.expm1(self.integral_beta(t)))

    def t_from_sigma(self, sigma: TensorLike) -> Tensor:
        """Inverse of :meth:`sigma`: solve ``int_0^t beta = log(1 + sigma^2)`` for t."""
        L = torch.log1p(_t(sigma) ** 2)
        db = self.beta_max - self.beta_min
        if db == 0:
            return L / self.beta_min
        return (torch.sqrt(self.beta_min**2 + 2.0 * db * L) - self.beta_min) / db

    def sample_t(
        self,
        n: int,
        generator: torch.Generator,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Training times ``t ~ Uniform[t_min, 1]`` of shape (n,)."""
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
        return (self.t_min + (1.0 - self.t_min) * u).to(device=device, dtype=dtype)

    def quadrature(self, n_nodes: int) -> tuple[Tensor, Tensor]:
        """Gauss-Legendre nodes t_j and weights w_j of E_{t ~ U[t_min, 1]} f(t) ~ sum_j w_j f(t_j)."""
        u, w = _legendre(n_nodes)
        return self.t_min + (1.0 - self.t_min) * u, w


@dataclass(frozen=True)
class VESchedule:
    """Variance-exploding schedule: ``t = sigma``, ``s_t = 1``, ``gamma_t = sigma`` (spec section 2).

    Training draws ``ln sigma ~ Uniform[ln sigma_min, ln sigma_max]``.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    name: str = "ve"

    def s(self, t: TensorLike) -> Tensor:
        """``s_t = 1``."""
        return torch.ones_like(_t(t))

    def gamma(self, t: TensorLike) -> Tensor:
        """``gamma_t = sigma = t``."""
        return _t(t).clone()

    def sigma(self, t: TensorLike) -> Tensor:
        """``sigma = t``."""
        return _t(t).clone()

    def t_from_sigma(self, sigma: TensorLike) -> Tensor:
        """``t = sigma``."""
        return _t(sigma).clone()

    def sample_t(
        self,
        n: int,
        generator: torch.Generator,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Log-uniform training noise levels of shape (n,)."""
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        return torch.exp(lo + (hi - lo) * u).to(device=device, dtype=dtype)

    def quadrature(self, n_nodes: int) -> tuple[Tensor, Tensor]:
        """Gauss-Legendre nodes and weights of E f(sigma) over ln sigma ~ U[ln sigma_min, ln sigma_max]."""
        u, w = _legendre(n_nodes)
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        return torch.exp(lo + (hi - lo) * u), w


@dataclass(frozen=True)
class EDMSchedule(VESchedule):
    """EDM (Karras et al. 2022): VE with training density ``ln sigma ~ N(P_mean, P_std^2)`` (spec section 2)."""

    p_mean: float = -1.2
    p_std: float = 1.2
    name: str = "edm"

    def sample_t(
        self,
        n: int,
        generator: torch.Generator,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Training noise levels ``exp(N(P_mean, P_std^2))`` of shape (n,)."""
        return sample_edm_sigmas(n, generator, p_mean=self.p_mean, p_std=self.p_std, dtype=dtype, device=device)

    def quadrature(self, n_nodes: int) -> tuple[Tensor, Tensor]:
        """Gauss-Hermite nodes and weights of E f(sigma) over ln sigma ~ N(P_mean, P_std^2)."""
        z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
        zt = torch.as_tensor(z, dtype=torch.float64)
        return torch.exp(self.p_mean + self.p_std * zt), torch.as_tensor(w / math.sqrt(2 * math.pi), dtype=torch.float64)


def _legendre(n_nodes: int) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre nodes u_j in [0, 1] and weights (sum 1) of E_{u ~ U[0, 1]}."""
    u, w = np.polynomial.legendre.leggauss(n_nodes)
    return torch.as_tensor((u + 1) / 2, dtype=torch.float64), torch.as_tensor(w / 2, dtype=torch.float64)


def loss_weight(weighting: str, s_t: Tensor, gamma_t: Tensor, sigma_data: TensorLike = 0.5) -> Tensor:
    """lambda_t (spec section 2): 1 ("unit") or EDM's (sigma^2 + sigma_data^2)/(sigma sigma_data)^2, sigma = gamma_t/s_t."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {WEIGHTINGS}, got {weighting!r}")
    if weighting == "unit":
        return torch.ones_like(torch.as_tensor(gamma_t) / s_t)
    sigma = gamma_t / s_t
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def get_schedule(name: str, **kwargs: float) -> VPSchedule | VESchedule | EDMSchedule:
    """Schedule by name: ``"vp"``, ``"ve"`` or ``"edm"`` (spec section 2); the losses use these too."""
    table: dict[str, type[VPSchedule] | type[VESchedule] | type[EDMSchedule]] = {
        "vp": VPSchedule,
        "ve": VESchedule,
        "edm": EDMSchedule,
    }
    if name not in table:
        raise ValueError(f"schedule={name!r} is unknown; choose one of {sorted(table)}")
    return table[name](**kwargs)  # type: ignore[arg-type]


def get_sigmas_karras(
    n: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Karras et al. (2022) noise levels, decreasing, with a trailing 0: shape (n + 1,) (spec section 8)."""
    if n < 1:
        raise ValueError(f"n={n} (number of sampling steps) must be >= 1")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min={sigma_min} < sigma_max={sigma_max}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    if n == 1:
        ramp = torch.zeros(1, dtype=torch.float64)
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device=device, dtype=dtype)


def sample_edm_sigmas(
    n: int,
    generator: torch.Generator,
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """EDM training noise levels ``ln sigma ~ N(P_mean, P_std^2)``, shape (n,) (spec section 2)."""
    z = torch.randn(n, generator=generator, dtype=torch.float64, device=generator.device)
    return torch.exp(p_mean + p_std * z).to(device=device, dtype=dtype)
