"""Memorisation, on-support, generalisation and reproducibility scores of samples (spec section 13).

* memorised: ``||x - NN1(x)|| / ||x - NN2(x)|| < 1/3`` over the training set (raw vectors),
  :func:`molrg.analysis.diagnostics.memorisation_ratio`.
* on support (ground truth known): relative residual ``min_k ||(I - P_k) x|| / ||x||`` below
  :data:`ON_SUPPORT_THRESHOLD`. Calibration (tests/molrg/test_scores.py re-checks it): samples of the
  exact MoLRG posterior with the true bases (heun / ddim / sde, 18 steps) have relative residuals
  ~1e-15 with equal d_k and at most 2e-3 with d_k = 3, 2, 1 (a few samples between components), so
  they are >= 0.99 on support at any threshold >= 1e-2; isotropic Gaussian points
  have ``sqrt(1 - d/n)`` (0.96 for d = 4, n = 48; 0.66 for d = 4, n = 8) and must not count. The
  threshold 0.2 (96 % of the sample's energy inside one true subspace) keeps both references where
  they belong with a wide margin and is the same for every (n, d); the empirical denoiser's samples
  are training points, so they are on support *and* memorised (generalisation 0).
* generalisation score: fraction of samples on support and not memorised; without ground truth
  ``1 - memorised_fraction``.
* reproducibility (two networks on disjoint halves, samples from the same initial noise): pair i
  agrees when the cosine similarity of the two samples exceeds :data:`REPRODUCIBILITY_THRESHOLD` 0.9.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from molrg.analysis.diagnostics import MEMORISATION_THRESHOLD, memorisation_ratio, off_subspace_residual
from molrg.bases import pad_bases

__all__ = [
    "MEMORISATION_THRESHOLD",
    "ON_SUPPORT_THRESHOLD",
    "REPRODUCIBILITY_THRESHOLD",
    "generalisation_score",
    "memorised_mask",
    "on_support_mask",
    "reproducibility",
    "sample_scores",
]

ON_SUPPORT_THRESHOLD = 0.2
REPRODUCIBILITY_THRESHOLD = 0.9

BasesLike = Sequence[Tensor] | Tensor


def _samples(samples: Tensor) -> Tensor:
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise ValueError(f"samples: expected shape (M >= 1, n), got {tuple(samples.shape)}")
    return samples.to(torch.float64)


def _padded(bases: BasesLike, like: Tensor) -> Tensor:
    U = bases if isinstance(bases, Tensor) else pad_bases([torch.as_tensor(B, dtype=torch.float64) for B in bases])
    if U.ndim != 3 or U.shape[1] != like.shape[1]:
        raise ValueError(f"bases: expected (K, n={like.shape[1]}, dmax), got {tuple(U.shape)}")
    return U.to(device=like.device, dtype=like.dtype)


def memorised_mask(samples: Tensor, train_X: Tensor, threshold: float = MEMORISATION_THRESHOLD) -> Tensor:
    """Bool (M,): NN1/NN2 distance ratio over ``train_X`` (N >= 2, n) below ``threshold``."""
    x = _samples(samples)
    return memorisation_ratio(x, train_X.to(device=x.device, dtype=x.dtype)) < threshold


def on_support_mask(samples: Tensor, true_bases: BasesLike, threshold: float = ON_SUPPORT_THRESHOLD) -> Tensor:
    """Bool (M,): relative residual ``min_k ||(I - P_k) x|| / ||x||`` below ``threshold``."""
    x = _samples(samples)
    resid, _ = off_subspace_residual(x, _padded(true_bases, x))
    return resid < threshold


def generalisation_score(samples: Tensor, train_X: Tensor, true_bases: BasesLike | None = None) -> float:
    """Fraction on support and not memorised; without ``true_bases`` ``1 - memorised_fraction``."""
    keep = ~memorised_mask(samples, train_X)
    if true_bases is not None:
        keep = keep & on_support_mask(samples, true_bases).to(keep.device)
    return float(keep.double().mean())


def reproducibility(samples_a: Tensor, samples_b: Tensor, threshold: float = REPRODUCIBILITY_THRESHOLD) -> dict[str, Any]:
    """Agreement of paired samples (same initial noise, two members), JSON-able.

    Returns ``reproducible_fraction`` (cosine > threshold), ``cosine_median``, ``cosine_mean``,
    ``relative_distance_median`` (``||a - b|| / max(||a||, ||b||)``), ``threshold``, ``n_pairs``.
    """
    a, b = _samples(samples_a), _samples(samples_b)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    tiny = torch.finfo(a.dtype).tiny
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(tiny)
    rel = (a - b).norm(dim=-1) / torch.maximum(a.norm(dim=-1), b.norm(dim=-1)).clamp_min(tiny)
    return {
        "reproducible_fraction": float((cos > threshold).double().mean()),
        "cosine_median": float(cos.median()),
        "cosine_mean": float(cos.mean()),
        "relative_distance_median": float(rel.median()),
        "threshold": float(threshold),
        "n_pairs": int(a.shape[0]),
    }


def sample_scores(samples: Tensor, train_X: Tensor | None = None, true_bases: BasesLike | None = None) -> dict[str, Any]:
    """JSON-able score blocks for a sample set's diagnostics (spec section 13).

    ``memorisation``: ``memorised_fraction``, ``generalisation_score`` (on support and not
    memorised with truth, else ``1 - memorised_fraction``), ``threshold``; ``true`` (with truth):
    ``on_support_fraction`` and ``on_support_threshold``. Blocks whose inputs are missing are absent.
    """
    x = _samples(samples)
    out: dict[str, Any] = {}
    support = on_support_mask(x, true_bases) if true_bases is not None else None
    if support is not None:
        out["true"] = {"on_support_fraction": float(support.double().mean()), "on_support_threshold": ON_SUPPORT_THRESHOLD}
    if train_X is not None:
        mem = memorised_mask(x, train_X)
        keep = ~mem if support is None else (~mem & support)
        out["memorisation"] = {
            "memorised_fraction": float(mem.double().mean()),
            "generalisation_score": float(keep.double().mean()),
            "threshold": MEMORISATION_THRESHOLD,
        }
    return out
