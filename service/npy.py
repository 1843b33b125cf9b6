"""The MoLRG data generator in numpy (the API must not import molrg or torch).

x0 = U_k a, k ~ Categorical(pi), a ~ N(0, I_{d_k}), plus optional noise_std * e (spec section 1).
Every draw comes from one ``numpy.random.default_rng(seed)`` in a fixed order: bases, labels,
coefficients (component by component), noise.
"""

import io
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SyntheticData:
    X: np.ndarray  # (N, n) float64
    labels: np.ndarray  # (N,) int64
    bases: list[np.ndarray]  # K arrays (n, d_k) with orthonormal columns
    weights: np.ndarray  # (K,) float64, sums to 1
    counts: list[int]  # N_k


def largest_remainder(total: int, weights: np.ndarray) -> list[int]:
    """Integer counts summing to ``total`` closest to ``total * weights`` (Hamilton's method)."""
    raw = total * np.asarray(weights, dtype=np.float64)
    counts = np.floor(raw).astype(np.int64)
    short = total - int(counts.sum())
    # Ties go to the lower index (stable sort), so the result is deterministic.
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:short]] += 1
    return [int(c) for c in counts]


def orthonormal_bases(rng: np.random.Generator, ambient_dim: int, dims: list[int], orthogonal: bool) -> list[np.ndarray]:
    """Orthogonal: QR of one Gaussian n x sum(d_k) matrix split into blocks; else independent QRs."""
    if orthogonal:
        q, _ = np.linalg.qr(rng.standard_normal((ambient_dim, sum(dims))))
        splits = np.cumsum(dims)[:-1]
        return [np.ascontiguousarray(b) for b in np.split(q, splits, axis=1)]
    return [np.linalg.qr(rng.standard_normal((ambient_dim, d)))[0] for d in dims]


def make_molrg(
    ambient_dim: int,
    dims: list[int],
    *,
    n_samples: int | None = None,
    samples_per_component: int | list[int] | None = None,
    weights: list[float] | None = None,
    orthogonal: bool = True,
    balanced: bool = True,
    noise_std: float = 0.0,
    seed: int = 0,
) -> SyntheticData:
    """Sample a MoLRG data set; exactly one of ``n_samples`` / ``samples_per_component`` is given."""
    K = len(dims)
    rng = np.random.default_rng(seed)
    pi = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=np.float64)
    pi = pi / pi.sum()
    bases = orthonormal_bases(rng, ambient_dim, dims, orthogonal)
    if samples_per_component is not None:
        counts = [samples_per_component] * K if isinstance(samples_per_component, int) else list(samples_per_component)
        labels = np.repeat(np.arange(K, dtype=np.int64), counts)
    elif n_samples is None:
        raise ValueError("give n_samples or samples_per_component")
    elif balanced:
        counts = largest_remainder(n_samples, pi)
        labels = np.repeat(np.arange(K, dtype=np.int64), counts)
    else:
        labels = rng.choice(K, size=n_samples, p=pi).astype(np.int64)
        counts = [int(c) for c in np.bincount(labels, minlength=K)]
    X = np.zeros((labels.shape[0], ambient_dim), dtype=np.float64)
    for k, U_k in enumerate(bases):
        idx = np.flatnonzero(labels == k)
        a = rng.standard_normal((idx.size, dims[k]))
        X[idx] = a @ U_k.T
    if noise_std > 0:
        X += noise_std * rng.standard_normal(X.shape)
    return SyntheticData(X=X, labels=labels, bases=bases, weights=pi, counts=counts)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npz_bytes(bases: list[np.ndarray]) -> bytes:
    """Bases as ``.npz`` with arrays ``U_0 .. U_{K-1}`` (CONTRACTS.md)."""
    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"U_{k}": np.asarray(U, dtype=np.float64) for k, U in enumerate(bases)}
    np.savez(buf, **arrays)
    return buf.getvalue()
