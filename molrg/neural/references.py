"""Closed-form reference denoisers that bracket every neural result (spec section 12).

* :func:`empirical_denoiser`: the posterior mean of the training set itself,
  ``D(x; sigma) = sum_i softmax_i(-||x - x_i||^2 / (2 sigma^2)) x_i``. Its sampler returns training
  points: it memorises by construction.
* the exact MoLRG posterior mean with the true bases is :func:`molrg.lowrank.analytic.exact_denoiser`
  (section 3): it generalises by construction. :class:`ExactPosterior` wraps it as a model.

Both models sample through :func:`molrg.sampling.samplers.sample` like any other denoiser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from molrg.lowrank.analytic import exact_denoiser
from molrg.sampling.samplers import sample

__all__ = ["EmpiricalDiffusion", "ExactPosterior", "empirical_denoiser", "empirical_posterior_mean"]

Denoiser = Any  # Callable[[Tensor, Tensor | float], Tensor]

# Elements of the (queries x training points) logit block held at once: memory is bounded by
# about 8 * _BLOCK bytes (float64) whatever M and N are.
_BLOCK = 1 << 22


def empirical_posterior_mean(x: Tensor, X: Tensor, sigma: Tensor | float, block: int = _BLOCK) -> Tensor:
    """``sum_i softmax_i(-||x - x_i||^2 / (2 sigma^2)) x_i`` for x (M, n), X (N, n), sigma float or (M,).

    The logits drop the per-query constant ``||x||^2`` (softmax is invariant to it), use
    ``(x . x_i - ||x_i||^2 / 2) / sigma^2`` and are normalised by a streaming log-sum-exp over
    chunks of training points, so at most ``block`` logits exist at a time. Runs in x's dtype.
    """
    if x.ndim != 2 or X.ndim != 2 or X.shape[1] != x.shape[1] or X.shape[0] < 1:
        raise ValueError(f"expected x (M, n) and X (N >= 1, n), got {tuple(x.shape)} and {tuple(X.shape)}")
    M, N = x.shape[0], X.shape[0]
    T = X.to(device=x.device, dtype=x.dtype)
    half_sq = 0.5 * T.square().sum(-1)
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(M)
    inv_var = sig.square().clamp_min(torch.finfo(x.dtype).tiny).reciprocal()
    n_chunk = max(1, min(N, block))
    m_chunk = max(1, block // n_chunk)
    out = torch.empty_like(x)
    for q0 in range(0, M, m_chunk):
        q = x[q0 : q0 + m_chunk]
        iv = inv_var[q0 : q0 + m_chunk, None]
        run_max = torch.full((q.shape[0], 1), -torch.inf, dtype=x.dtype, device=x.device)
        run_sum = torch.zeros((q.shape[0], 1), dtype=x.dtype, device=x.device)
        acc = torch.zeros_like(q)
        for t0 in range(0, N, n_chunk):
            Tc = T[t0 : t0 + n_chunk]
            logits = (q @ Tc.T - half_sq[t0 : t0 + n_chunk]) * iv
            new_max = torch.maximum(run_max, logits.amax(-1, keepdim=True))
            rescale = (run_max - new_max).exp()
            w = (logits - new_max).exp()
            run_sum = run_sum * rescale + w.sum(-1, keepdim=True)
            acc = acc * rescale + w @ Tc
            run_max = new_max
        out[q0 : q0 + m_chunk] = acc / run_sum
    return out


def empirical_denoiser(X: Tensor, block: int = _BLOCK) -> Denoiser:
    """The optimal denoiser of the empirical distribution of ``X`` (N, n) as ``D(x, sigma)``."""
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"X: expected shape (N >= 1, n), got {tuple(X.shape)}")
    data = X.detach()
    cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def denoiser(x: Tensor, sigma: Tensor | float) -> Tensor:
        key = (x.device, x.dtype)
        if key not in cache:
            cache[key] = data.to(device=x.device, dtype=x.dtype)
        return empirical_posterior_mean(x, cache[key], sigma, block)

    return denoiser


class _Sampleable:
    """``denoise`` and ``sample`` for a model that provides ``denoiser()`` and ``ambient_dim``."""

    ambient_dim: int
    device: torch.device | str | None = None

    def denoiser(self, member: int = 0) -> Denoiser:  # pragma: no cover - overridden
        raise NotImplementedError

    def denoise(self, x: Tensor, sigma: Tensor | float, member: int = 0) -> Tensor:
        """``D(x (M, n), sigma float or (M,)) -> (M, n)``."""
        return self.denoiser(member)(x, sigma)

    def sample(
        self, n_samples: int, seed: int = 0, sampler: str = "heun", steps: int = 18, member: int = 0, **kwargs: Any
    ) -> Tensor:
        """Samples (n_samples, n) float64 via :func:`molrg.sampling.samplers.sample` (sample i
        depends only on ``(seed, i)``); ``kwargs``: sigma_min, sigma_max, rho, callback."""
        return sample(
            self.denoiser(member), n_samples, self.ambient_dim, sampler=sampler, steps=steps, seed=seed,
            device=self.device, **kwargs,
        )


class EmpiricalDiffusion(_Sampleable):
    """The empirical optimal denoiser as a model: ``fit(X)`` stores the training set (section 12)."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = device
        self.X_: Tensor | None = None

    def fit(self, X: Tensor, callback: Any = None) -> EmpiricalDiffusion:
        X = torch.as_tensor(X)
        if X.ndim != 2 or X.shape[0] < 1 or not bool(torch.isfinite(X).all()):
            raise ValueError(f"X: expected a finite (N >= 1, n) array, got shape {tuple(X.shape)}")
        self.X_ = X.detach().to(device=self.device, dtype=torch.float64)
        self.ambient_dim = int(X.shape[1])
        return self

    def denoiser(self, member: int = 0) -> Denoiser:
        if self.X_ is None:
            raise ValueError("EmpiricalDiffusion: call fit(X) first")
        return empirical_denoiser(self.X_)

    def state_dict(self) -> dict[str, Tensor]:
        if self.X_ is None:
            raise ValueError("EmpiricalDiffusion: call fit(X) first")
        return {"X": self.X_.detach().cpu().contiguous().clone()}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, Tensor], device: torch.device | str | None = None) -> EmpiricalDiffusion:
        return cls(device).fit(tensors["X"])


class ExactPosterior(_Sampleable):
    """The exact MoLRG posterior mean with given (true) bases as a model (sections 3, 12)."""

    def __init__(
        self,
        bases: Sequence[Tensor] | Tensor,
        weights: Sequence[float] | Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.bases = bases
        self.weights = weights
        self.device = device
        first = bases[0] if not isinstance(bases, Tensor) else bases[0]
        self.ambient_dim = int(first.shape[0])
        self._denoiser = exact_denoiser(bases, weights)

    def fit(self, X: Tensor | None = None, callback: Any = None) -> ExactPosterior:
        """Nothing to fit: the bases are the truth (accepts X for a uniform model interface)."""
        return self

    def denoiser(self, member: int = 0) -> Denoiser:
        return self._denoiser
