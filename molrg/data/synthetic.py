"""Synthetic MoLRG data (spec section 1): x0 = U_k a, k ~ Categorical(pi), a ~ N(0, I_{d_k}).

Every draw comes from the one generator, :func:`molrg.spec.generate_synthetic` (numpy's PCG64 seeded by
``seed``, never global state, in a fixed order: bases, labels, coefficients, noise), so the API, which
imports no torch, generates the same arrays; the result is cast to ``dtype``/``device`` at the end. Hence a dataset depends only on its spec and seed, never on the device, the dtype of the
result or the batch it was generated in, and the clean part of ``X`` is the same for every
``noise_std`` (the noise is always drawn, then scaled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molrg.bases import pad_bases
from molrg.spec import SyntheticSpec, component_counts, generate_synthetic, raise_for, synthetic_errors

WeightsLike = Sequence[float] | Tensor | np.ndarray | None
CountsLike = int | Sequence[int] | None

__all__ = [
    "MoLRGBatch",
    "MoLRGData",
    "component_counts",
    "make_molrg",
    "synthetic_spec",
    "sample_molrg_batch",
    "validate_spec",
]


@dataclass(frozen=True, eq=False)
class MoLRGData:
    """One MoLRG dataset (spec section 1).

    Attributes
    ----------
    X : Tensor of shape (N, n)
    labels : int64 Tensor of shape (N,), the component of each sample
    bases : list of K Tensors of shape (n, d_k), orthonormal columns
    weights : Tensor of shape (K,), the mixture weights pi_k
    dims : list of K ints d_k
    """

    X: Tensor
    labels: Tensor
    bases: list[Tensor]
    weights: Tensor
    dims: list[int]
    seed: int = 0

    @property
    def n_samples(self) -> int:
        """N, the number of samples."""
        return int(self.X.shape[0])

    @property
    def ambient_dim(self) -> int:
        """n, the ambient dimension."""
        return int(self.X.shape[1])

    @property
    def n_components(self) -> int:
        """K, the number of components."""
        return len(self.dims)


@dataclass(frozen=True, eq=False)
class MoLRGBatch:
    """B independent MoLRG datasets sharing one spec; trial b came from ``seeds[b]`` alone.

    Attributes
    ----------
    X : Tensor of shape (B, N, n)
    labels : int64 Tensor of shape (B, N)
    bases : Tensor of shape (B, K, n, dmax), columns j >= d_k exactly zero (docs/CONTRACTS.md)
    weights : Tensor of shape (K,)
    dims : list of K ints
    seeds : list of B ints
    """

    X: Tensor
    labels: Tensor
    bases: Tensor
    weights: Tensor
    dims: list[int]
    seeds: list[int]


def _as_weights(weights: WeightsLike) -> list[float] | None:
    if weights is None:
        return None
    if isinstance(weights, Tensor):
        return [float(v) for v in weights.detach().cpu().reshape(-1).tolist()]
    return [float(v) for v in np.asarray(weights, dtype=np.float64).reshape(-1)]


def synthetic_spec(
    ambient_dim: int,
    dims: Sequence[int],
    n_samples: int | None = None,
    samples_per_component: CountsLike = None,
    weights: WeightsLike = None,
    orthogonal: bool = True,
    noise_std: float = 0.0,
    seed: int = 0,
    balanced: bool = True,
) -> SyntheticSpec:
    """The declared spec of a MoLRG dataset (molrg.spec.SyntheticSpec); ValueError naming a bad field."""
    per = samples_per_component
    data = {
        "ambient_dim": ambient_dim, "dims": [int(d) for d in dims], "n_samples": n_samples,
        "samples_per_component": per if per is None or isinstance(per, int) else [int(c) for c in per],
        "weights": _as_weights(weights), "orthogonal": orthogonal, "balanced": balanced,
        "noise_std": float(noise_std), "seed": int(seed),
    }
    out = SyntheticSpec.model_validate(data)
    raise_for(synthetic_errors(out))
    return out


def validate_spec(*args: Any, **kwargs: Any) -> None:
    """Check a MoLRG spec (section 1): raise ValueError naming the field and the fix."""
    synthetic_spec(*args, **kwargs)


def make_molrg(
    ambient_dim: int,
    dims: Sequence[int],
    n_samples: int | None = None,
    samples_per_component: CountsLike = None,
    weights: WeightsLike = None,
    orthogonal: bool = True,
    noise_std: float = 0.0,
    seed: int = 0,
    balanced: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> MoLRGData:
    """Draw a MoLRG dataset x = U_k a + noise_std * e (spec section 1) with the one generator.

    The draws are :func:`molrg.spec.generate_synthetic`'s, so the same spec and seed give the same
    array here, in a sweep and from the API (``POST /api/v1/datasets``).

    Parameters
    ----------
    ambient_dim : n
    dims : d_k per component (K entries)
    n_samples : total N; with ``balanced`` the N_k come from pi by largest-remainder rounding
    samples_per_component : N_k (an int for all components, or K ints); exclusive with n_samples.
        With ``balanced=False`` only their sum N is used and labels are drawn i.i.d. from pi.
    weights : pi (K,), positive (normalised here); default uniform, or N_k / N when counts are given
    orthogonal : mutually orthogonal subspaces (needs sum(dims) <= n) or independent ones
    noise_std : standard deviation of the additive isotropic noise
    seed : the only source of randomness
    balanced : exact counts N_k (shuffled order) or i.i.d. categorical labels

    Returns
    -------
    MoLRGData with X (N, n), labels (N,), bases list of (n, d_k), weights (K,)
    """
    spec = synthetic_spec(ambient_dim, dims, n_samples, samples_per_component, weights, orthogonal, noise_std,
                          seed, balanced)
    arrays = generate_synthetic(spec)

    def cast(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

    return MoLRGData(
        X=cast(arrays.X),
        labels=torch.from_numpy(arrays.labels).to(device=device, dtype=torch.int64),
        bases=[cast(U) for U in arrays.bases],
        weights=cast(arrays.weights),
        dims=list(spec.dims),
        seed=int(seed),
    )


def sample_molrg_batch(
    seeds: Sequence[int],
    ambient_dim: int,
    dims: Sequence[int],
    n_samples: int | None = None,
    samples_per_component: CountsLike = None,
    weights: WeightsLike = None,
    orthogonal: bool = True,
    noise_std: float = 0.0,
    balanced: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> MoLRGBatch:
    """B datasets stacked; trial b equals ``make_molrg(..., seed=seeds[b])`` bit for bit (spec section 7).

    Returns
    -------
    MoLRGBatch with X (B, N, n), labels (B, N), padded bases (B, K, n, dmax)
    """
    seeds_l = [int(s) for s in seeds]
    if not seeds_l:
        raise ValueError("seeds: need at least one seed")
    trials = [
        make_molrg(
            ambient_dim, dims, n_samples, samples_per_component, weights, orthogonal, noise_std,
            seed=s, balanced=balanced, dtype=dtype, device=device,
        )
        for s in seeds_l
    ]
    return MoLRGBatch(
        X=torch.stack([t.X for t in trials]),
        labels=torch.stack([t.labels for t in trials]),
        bases=torch.stack([pad_bases(t.bases) for t in trials]),
        weights=trials[0].weights,
        dims=trials[0].dims,
        seeds=seeds_l,
    )
