"""Synthetic MoLRG datasets and THE generator (spec section 1)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from pydantic import (
    Field,
    field_validator,
)

from molrg.spec.base import (
    MAX_AMBIENT_DIM,
    MAX_COMPONENTS,
    FieldIssue,
    Seed,
    _Spec,
    raise_for,
)

# ---------------------------------------------------------------- datasets (section 1)


class SyntheticSpec(_Spec):
    """A MoLRG data set: x = U_k a + noise_std * e, with a ~ N(0, I_{d_k})."""

    ambient_dim: int = Field(ge=2, le=MAX_AMBIENT_DIM, description="Ambient dimension n.")
    dims: list[int] = Field(min_length=1, max_length=MAX_COMPONENTS, description="Intrinsic dimension d_k of each component.")
    n_samples: int | None = Field(default=None, ge=1, description="Total samples N (or samples_per_component).")
    samples_per_component: int | list[int] | None = Field(
        default=None, description="N_k: one count for all components or one per component.")
    weights: list[float] | None = Field(default=None, description="Mixture weights pi_k (normalised); default 1/K.")
    orthogonal: bool = Field(default=True, description="Mutually orthogonal subspaces (needs sum(dims) <= n).")
    balanced: bool = Field(default=True, description="Exact counts N_k = round(N pi_k); else i.i.d. labels.")
    noise_std: float = Field(default=0.0, ge=0.0, le=1e6, description="Std of additive isotropic noise.")
    seed: Seed = 0

    @field_validator("weights")
    @classmethod
    def _finite_weights(cls, w: list[float] | None) -> list[float] | None:
        if w is None:
            return None
        if any(not (math.isfinite(v) and v > 0) for v in w):
            raise ValueError("weights must be positive and finite")
        try:
            total = math.fsum(w)
        except OverflowError:
            total = math.inf
        if not math.isfinite(total):
            raise ValueError("the sum of the weights overflows; give them on a smaller scale")
        return w

    def counts(self) -> list[int]:
        """N_k per component (balanced or given); for i.i.d. labels the expected split."""
        K = len(self.dims)
        per = self.samples_per_component
        if per is not None:
            return [per] * K if isinstance(per, int) else list(per)
        return component_counts(int(self.n_samples or 0), self.normalised_weights())

    def total_samples(self) -> int:
        """N."""
        return sum(self.counts()) if self.samples_per_component is not None else int(self.n_samples or 0)

    def normalised_weights(self) -> list[float]:
        """pi_k summing to 1 (uniform by default; N_k / N when counts are given)."""
        K = len(self.dims)
        if self.weights is None:
            if self.samples_per_component is not None:
                c = [self.samples_per_component] * K if isinstance(self.samples_per_component, int) \
                    else list(self.samples_per_component)
                return [v / sum(c) for v in c] if sum(c) > 0 else [1.0 / K] * K
            return [1.0 / K] * K
        top = max(self.weights)  # scaled first, so a sum near the float limit stays finite
        total = math.fsum(v / top for v in self.weights)
        return [v / top / total for v in self.weights]


def component_counts(n_samples: int, weights: list[float]) -> list[int]:
    """Exact class sizes N_k summing to N from pi by largest-remainder rounding (section 1)."""
    raw = [n_samples * float(w) for w in weights]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda k: -(raw[k] - counts[k]))  # ties: lower index first
    for k in order[: n_samples - sum(counts)]:
        counts[k] += 1
    return counts


def synthetic_errors(spec: SyntheticSpec) -> list[FieldIssue]:
    """Cross-field rules of a synthetic dataset (section 1); empty when it can be generated."""
    out: list[FieldIssue] = []
    n, K = spec.ambient_dim, len(spec.dims)
    for i, d in enumerate(spec.dims):
        if d < 1:
            out.append(FieldIssue(f"dims[{i}]", f"dims[{i}]={d} must be >= 1"))
        elif d >= n:
            out.append(FieldIssue(f"dims[{i}]", f"dims[{i}]={d} must be < ambient_dim={n}"))
    if spec.orthogonal and sum(spec.dims) > n:
        out.append(FieldIssue("dims", f"sum(dims)={sum(spec.dims)} exceeds ambient_dim={n} for orthogonal "
                                      "subspaces; use orthogonal=false or smaller dims"))
    if spec.weights is not None and len(spec.weights) != K:
        out.append(FieldIssue("weights", f"len(weights)={len(spec.weights)} != len(dims)={K}"))
    if (spec.n_samples is None) == (spec.samples_per_component is None):
        out.append(FieldIssue("n_samples", "give exactly one of n_samples and samples_per_component"))
    per = spec.samples_per_component
    if isinstance(per, list):
        if len(per) != K:
            out.append(FieldIssue("samples_per_component", f"len(samples_per_component)={len(per)} != len(dims)={K}"))
        if any(c < 1 for c in per):
            out.append(FieldIssue("samples_per_component", "every count must be >= 1"))
    elif isinstance(per, int) and per < 1:
        out.append(FieldIssue("samples_per_component", f"must be >= 1, got {per}"))
    return out


class SyntheticArrays(NamedTuple):
    """A generated MoLRG dataset as numpy arrays (section 1)."""

    X: Any  # (N, n) float64
    labels: Any  # (N,) int64
    bases: list[Any]  # K arrays (n, d_k), orthonormal columns
    weights: Any  # (K,) float64 pi_k
    counts: list[int]  # N_k


def _signed_q(G: Any) -> Any:
    """Q of a QR with diag(R) > 0, so Q is a deterministic function of G."""
    import numpy as np

    Q, R = np.linalg.qr(G)
    sign = np.sign(np.diagonal(R))
    sign[sign == 0] = 1.0
    return Q * sign


def generate_synthetic(spec: SyntheticSpec) -> SyntheticArrays:
    """THE MoLRG generator: x = U_k a + noise_std e (section 1), a function of (spec, seed) alone.

    Every draw comes from one ``numpy.random.default_rng(seed)`` (never global state) in a fixed order:
    bases, label order, coefficients, noise. It lives in the declaration so the API (no torch), the
    sweeps and :func:`molrg.make_molrg` produce the same array for the same spec and seed. The noise
    is drawn last, so the clean part of X does not depend on ``noise_std``.
    """
    import numpy as np

    raise_for(synthetic_errors(spec))
    rng = np.random.default_rng(spec.seed)
    n, dims, K = spec.ambient_dim, list(spec.dims), len(spec.dims)
    if spec.orthogonal:
        Q = _signed_q(rng.standard_normal((n, sum(dims))))
        bases = [np.ascontiguousarray(b) for b in np.split(Q, np.cumsum(dims)[:-1], axis=1)]
    else:
        bases = [_signed_q(rng.standard_normal((n, d))) for d in dims]
    pi = np.asarray(spec.normalised_weights(), dtype=np.float64)
    N = spec.total_samples()
    if spec.balanced:
        counts = spec.counts()
        labels = rng.permutation(np.repeat(np.arange(K, dtype=np.int64), counts))
    else:
        labels = rng.choice(K, size=N, p=pi).astype(np.int64)
        counts = [int(c) for c in np.bincount(labels, minlength=K)]
    A = rng.standard_normal((N, max(dims)))
    X = np.empty((N, n), dtype=np.float64)
    for k, U_k in enumerate(bases):
        rows = labels == k
        X[rows] = A[rows, : dims[k]] @ U_k.T
    del A
    if spec.noise_std > 0:
        X += spec.noise_std * rng.standard_normal((N, n))
    return SyntheticArrays(X=X, labels=labels, bases=bases, weights=pi, counts=counts)


def synthetic_peak_bytes(spec: SyntheticSpec) -> int:
    """Peak memory of :func:`generate_synthetic` (X, coefficients and noise, float64): the budget's measure."""
    N = spec.total_samples()
    return 8 * N * (2 * spec.ambient_dim + max(spec.dims))
