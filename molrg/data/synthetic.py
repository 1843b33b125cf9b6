"""Synthetic MoLRG data (spec section 1): x0 = U_k a, k ~ Categorical(pi), a ~ N(0, I_{d_k}).

Every draw comes from one ``torch.Generator().manual_seed(seed)`` on the CPU, in float64, in a
fixed order (bases, labels, coefficients, noise); the result is cast to ``dtype``/``device`` at the
end. Hence a dataset depends only on its spec and seed, never on the device, the dtype of the
result or the batch it was generated in, and the clean part of ``X`` is the same for every
``noise_std`` (the noise is always drawn, then scaled).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from molrg.bases import pad_bases

WeightsLike = Sequence[float] | Tensor | np.ndarray | None
CountsLike = int | Sequence[int] | None

__all__ = [
    "MoLRGBatch",
    "MoLRGData",
    "component_counts",
    "make_molrg",
    "random_bases",
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


def _as_dims(dims: Sequence[int]) -> list[int]:
    try:
        out = [int(d) for d in dims]
    except TypeError as exc:
        raise ValueError(f"dims: expected a list of ints, got {dims!r}") from exc
    if any(int(d) != d for d in dims):
        raise ValueError(f"dims: expected integers, got {list(dims)!r}")
    return out


def _as_weights(weights: WeightsLike) -> list[float] | None:
    if weights is None:
        return None
    if isinstance(weights, Tensor):
        w = [float(v) for v in weights.detach().cpu().reshape(-1).tolist()]
    else:
        w = [float(v) for v in np.asarray(weights, dtype=np.float64).reshape(-1)]
    return w


def validate_spec(
    ambient_dim: int,
    dims: Sequence[int],
    n_samples: int | None = None,
    samples_per_component: CountsLike = None,
    weights: WeightsLike = None,
    orthogonal: bool = True,
    noise_std: float = 0.0,
) -> None:
    """Check a MoLRG spec (spec section 1); raise ValueError naming the field and the fix."""
    if int(ambient_dim) != ambient_dim or ambient_dim < 2:
        raise ValueError(f"ambient_dim={ambient_dim!r} must be an integer >= 2")
    dims_l = _as_dims(dims)
    if not dims_l:
        raise ValueError("dims: need at least one component (e.g. dims=[4])")
    for k, d in enumerate(dims_l):
        if d < 1:
            raise ValueError(f"dims[{k}]={d} must be >= 1")
        if d >= ambient_dim:
            raise ValueError(f"dims[{k}]={d} must be < ambient_dim={ambient_dim}; use a smaller d_k")
    if orthogonal and sum(dims_l) > ambient_dim:
        raise ValueError(
            f"sum(dims)={sum(dims_l)} exceeds ambient_dim={ambient_dim} for orthogonal subspaces; "
            "use orthogonal=False or smaller dims"
        )
    K = len(dims_l)
    w = _as_weights(weights)
    if w is not None:
        if len(w) != K:
            raise ValueError(f"weights: expected {K} entries (one per dims entry), got {len(w)}")
        if any(not math.isfinite(v) or v < 0 for v in w):
            raise ValueError(f"weights={w} must be finite and non-negative")
        if abs(sum(w) - 1.0) > 1e-6:
            raise ValueError(f"weights={w} must sum to 1 (they sum to {sum(w):.6g}); normalise them")
    if (n_samples is None) == (samples_per_component is None):
        raise ValueError("give exactly one of n_samples or samples_per_component")
    if n_samples is not None:
        if int(n_samples) != n_samples or n_samples < 1:
            raise ValueError(f"n_samples={n_samples!r} must be an integer >= 1")
    else:
        counts = _as_counts(samples_per_component, K)
        if sum(counts) < 1:
            raise ValueError(f"samples_per_component={samples_per_component!r}: total N must be >= 1")
    if not math.isfinite(float(noise_std)) or noise_std < 0:
        raise ValueError(f"noise_std={noise_std!r} must be >= 0")


def _as_counts(samples_per_component: CountsLike, k: int) -> list[int]:
    if isinstance(samples_per_component, int | np.integer):
        counts = [int(samples_per_component)] * k
    else:
        counts = [int(c) for c in samples_per_component or []]
        if len(counts) != k:
            raise ValueError(
                f"samples_per_component: expected an int or {k} entries (one per dims entry), "
                f"got {len(counts)}"
            )
    if any(c < 0 for c in counts):
        raise ValueError(f"samples_per_component={counts} must be non-negative")
    return counts


def component_counts(n_samples: int, weights: Sequence[float]) -> list[int]:
    """Exact class sizes N_k summing to N from pi by largest-remainder rounding (spec section 1)."""
    raw = [n_samples * float(w) for w in weights]
    counts = [math.floor(r) for r in raw]
    remainder = n_samples - sum(counts)
    # Largest fractional part first; ties go to the lower index (stable sort).
    order = sorted(range(len(raw)), key=lambda k: -(raw[k] - counts[k]))
    for k in order[:remainder]:
        counts[k] += 1
    return counts


def random_bases(
    ambient_dim: int, dims: Sequence[int], generator: torch.Generator, orthogonal: bool = True
) -> list[Tensor]:
    """Random orthonormal U_k of shape (n, d_k), float64 CPU (spec section 1)."""
    dims_l = _as_dims(dims)
    if orthogonal:
        G = torch.randn(ambient_dim, sum(dims_l), generator=generator, dtype=torch.float64)
        Q = _qr_q(G)
        return list(torch.split(Q, dims_l, dim=1))
    out = []
    for d in dims_l:
        G = torch.randn(ambient_dim, d, generator=generator, dtype=torch.float64)
        out.append(_qr_q(G))
    return out


def _qr_q(G: Tensor) -> Tensor:
    Q, R = torch.linalg.qr(G)
    # Fix the column signs so Q is a deterministic function of G (diag(R) > 0).
    sign = torch.sign(torch.diagonal(R))
    sign[sign == 0] = 1.0
    return Q * sign


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
    """Draw a MoLRG dataset x = U_k a + noise_std * e (spec section 1).

    Parameters
    ----------
    ambient_dim : n
    dims : d_k per component (K entries)
    n_samples : total N; with ``balanced`` the N_k come from pi by largest-remainder rounding
    samples_per_component : N_k (an int for all components, or K ints); exclusive with n_samples.
        With ``balanced=False`` only their sum N is used and labels are drawn i.i.d. from pi.
    weights : pi (K,), default uniform, or N_k / N when ``samples_per_component`` is given
    orthogonal : mutually orthogonal subspaces (needs sum(dims) <= n) or independent ones
    noise_std : standard deviation of the additive isotropic noise
    seed : the only source of randomness
    balanced : exact counts N_k (shuffled order) or i.i.d. categorical labels

    Returns
    -------
    MoLRGData with X (N, n), labels (N,), bases list of (n, d_k), weights (K,)
    """
    validate_spec(ambient_dim, dims, n_samples, samples_per_component, weights, orthogonal, noise_std)
    dims_l = _as_dims(dims)
    K = len(dims_l)
    w = _as_weights(weights)
    if samples_per_component is not None:
        counts = _as_counts(samples_per_component, K)
        N = sum(counts)
        if w is None:
            w = [c / N for c in counts]
    else:
        N = int(n_samples)  # type: ignore[arg-type]
        if w is None:
            w = [1.0 / K] * K
        counts = component_counts(N, w)

    g = torch.Generator().manual_seed(int(seed))
    bases = random_bases(int(ambient_dim), dims_l, g, orthogonal)
    pi = torch.tensor(w, dtype=torch.float64)
    if balanced:
        labels = torch.repeat_interleave(torch.arange(K), torch.tensor(counts))
        labels = labels[torch.randperm(N, generator=g)]
    else:
        labels = torch.multinomial(pi, N, replacement=True, generator=g)
    U = pad_bases(bases)  # (K, n, dmax)
    A = torch.randn(N, U.shape[2], generator=g, dtype=torch.float64)
    X = torch.einsum("ind,id->in", U[labels], A)
    E = torch.randn(N, int(ambient_dim), generator=g, dtype=torch.float64)
    X = X + float(noise_std) * E

    def cast(t: Tensor) -> Tensor:
        return t.to(device=device, dtype=dtype)

    return MoLRGData(
        X=cast(X),
        labels=labels.to(device=device, dtype=torch.int64),
        bases=[cast(B) for B in bases],
        weights=cast(pi),
        dims=dims_l,
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
