"""Diagnostics of generated samples (spec section 8): on-subspace, frequencies, covariance, memorisation.

:func:`sample_diagnostics` returns a JSON-able dict (floats, ints, lists, None only) so workers can
store it as is; the building blocks return tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from molrg.bases import pad_bases

__all__ = [
    "MEMORISATION_THRESHOLD",
    "component_frequencies",
    "covariance_errors",
    "memorisation_ratio",
    "off_subspace_residual",
    "sample_diagnostics",
]

# A sample whose nearest training point is 3x closer than the second nearest counts as memorised.
MEMORISATION_THRESHOLD = 1.0 / 3.0

BasesLike = Sequence[Tensor] | Tensor


def _padded(bases: BasesLike, like: Tensor) -> tuple[Tensor, list[int]]:
    if isinstance(bases, Tensor):
        if bases.ndim != 3:
            raise ValueError(f"bases: expected a padded (K, n, dmax) tensor, got {tuple(bases.shape)}")
        U = bases
        dims = [int(v) for v in (U.square().sum(-2) > 0.5).sum(-1).tolist()]
    else:
        mats = [torch.as_tensor(B, dtype=torch.float64) for B in bases]
        U = pad_bases(mats)
        dims = [int(B.shape[1]) for B in mats]
    if U.shape[1] != like.shape[-1]:
        raise ValueError(f"bases have n={U.shape[1]} but samples have n={like.shape[-1]}")
    return U.to(device=like.device, dtype=like.dtype), dims


def _check_samples(samples: Tensor) -> Tensor:
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise ValueError(f"samples: expected shape (M, n) with M >= 1, got {tuple(samples.shape)}")
    return samples.to(torch.float64) if samples.dtype != torch.float64 else samples


def off_subspace_residual(samples: Tensor, U: Tensor) -> tuple[Tensor, Tensor]:
    """Relative residual ``min_k ||(I - P_k) x|| / ||x||`` and the argmin k (spec section 8).

    Parameters
    ----------
    samples : Tensor of shape (M, n); U : Tensor of shape (K, n, dmax), padded

    Returns
    -------
    (residual (M,), component (M,) int64)
    """
    coeff = torch.einsum("mn,knd->kmd", samples, U)  # (K, M, dmax)
    res = (samples[None] - coeff @ U.transpose(-1, -2)).norm(dim=-1)  # (K, M), explicit: no cancellation
    best, k = res.min(0)
    return best / samples.norm(dim=-1).clamp_min(torch.finfo(samples.dtype).tiny), k


def component_frequencies(samples: Tensor, U: Tensor) -> Tensor:
    """Fraction of samples with ``argmax_k ||U_k^T x||`` = k (spec section 8): shape (K,)."""
    k = torch.einsum("mn,knd->mkd", samples, U).square().sum(-1).argmax(-1)
    return torch.bincount(k, minlength=U.shape[0]).to(samples.dtype) / samples.shape[0]


def covariance_errors(samples: Tensor, U: Tensor, dims: Sequence[int]) -> list[float | None]:
    """Per component ``||E[a a^T] - I||_F / sqrt(d_k)`` for ``a = U_k^T x`` over its samples (spec section 8).

    The model's latent coefficients have mean 0, so the second moment is compared with I;
    ``None`` when fewer than 2 samples are assigned to the component.
    """
    k_of = torch.einsum("mn,knd->mkd", samples, U).square().sum(-1).argmax(-1)
    out: list[float | None] = []
    for k, d in enumerate(dims):
        x = samples[k_of == k]
        if x.shape[0] < 2:
            out.append(None)
            continue
        a = x @ U[k, :, :d]
        C = a.T @ a / a.shape[0]
        out.append(float(torch.linalg.matrix_norm(C - torch.eye(d, dtype=C.dtype, device=C.device)) / d**0.5))
    return out


def memorisation_ratio(samples: Tensor, train_X: Tensor, chunk: int = 1024) -> Tensor:
    """Distance to the nearest training point over distance to the second nearest (spec section 8): (M,)."""
    if train_X.ndim != 2 or train_X.shape[0] < 2 or train_X.shape[1] != samples.shape[1]:
        raise ValueError(f"train_X: expected shape (N >= 2, {samples.shape[1]}), got {tuple(train_X.shape)}")
    T = train_X.to(device=samples.device, dtype=samples.dtype)
    ratios = []
    for start in range(0, samples.shape[0], chunk):
        dist = torch.cdist(samples[start : start + chunk], T)
        two = dist.topk(2, dim=-1, largest=False).values
        ratios.append(two[:, 0] / two[:, 1].clamp_min(torch.finfo(samples.dtype).tiny))
    return torch.cat(ratios)


def _summary(v: Tensor) -> dict[str, float]:
    return {
        "median": float(v.median()),
        "mean": float(v.mean()),
        "p90": float(torch.quantile(v, 0.9)),
        "max": float(v.max()),
    }


def _chi2_pvalue(freq: Tensor, weights: Tensor, m: int) -> float:
    observed = freq.double().cpu() * m
    expected = weights.double().cpu() * m
    live = expected > 0
    if bool((observed[~live] > 0).any()):
        return 0.0
    dof = int(live.sum()) - 1
    if dof < 1:
        return 1.0
    stat = float(((observed[live] - expected[live]) ** 2 / expected[live]).sum())
    from scipy import stats  # deferred: importing scipy.stats costs about a second

    return float(stats.chi2.sf(stat, dof))


def _subspace_block(
    samples: Tensor, bases: BasesLike, weights: Tensor | Sequence[float] | None
) -> dict[str, Any]:
    U, dims = _padded(bases, samples)
    resid, _ = off_subspace_residual(samples, U)
    freq = component_frequencies(samples, U)
    block: dict[str, Any] = {
        "residual": _summary(resid),
        "frequencies": [float(f) for f in freq],
        "covariance_error": covariance_errors(samples, U, dims),
    }
    if weights is not None:
        w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1).cpu()
        if w.shape[0] != len(dims):
            raise ValueError(f"weights: expected {len(dims)} entries, got {w.shape[0]}")
        w = w / w.sum()
        block["expected_frequencies"] = [float(v) for v in w]
        block["frequency_chi2_pvalue"] = _chi2_pvalue(freq, w, samples.shape[0])
    return block


def sample_diagnostics(
    samples: Tensor,
    fitted_bases: BasesLike,
    weights: Tensor | Sequence[float] | None = None,
    true_bases: BasesLike | None = None,
    train_X: Tensor | None = None,
    *,
    true_weights: Tensor | Sequence[float] | None = None,
) -> dict[str, Any]:
    """JSON-able diagnostics of samples against fitted (and true) subspaces and the training set (section 8).

    Parameters
    ----------
    samples : Tensor of shape (M, n)
    fitted_bases : list of (n, d_k) or padded (K, n, dmax); ``weights``: their pi (K,)
    true_bases : optional ground truth, same forms; ``true_weights``: its pi, in its own order
    train_X : optional training data (N, n), N >= 2, for the memorisation ratio

    Returns
    -------
    dict with ``n_samples``, ``fitted`` and optional ``true`` blocks (``residual`` median/mean/p90/max,
    ``frequencies``, ``expected_frequencies``, ``frequency_chi2_pvalue``, ``covariance_error``) and an
    optional ``memorisation`` block (``ratio_median``, ``ratio_mean``, ``memorised_fraction``,
    ``generalisation_score``, ``threshold``)
    """
    x = _check_samples(samples)
    out: dict[str, Any] = {"n_samples": int(x.shape[0]), "fitted": _subspace_block(x, fitted_bases, weights)}
    if true_bases is not None:
        out["true"] = _subspace_block(x, true_bases, true_weights)
    if train_X is not None and train_X.shape[0] < 2:
        # NN1/NN2 needs a second nearest training point: undefined, not an error (section 8).
        out["memorisation"] = {"skipped": f"needs >= 2 training rows, the model was fitted on {train_X.shape[0]}"}
    elif train_X is not None:
        ratio = memorisation_ratio(x, train_X)
        memorised = float((ratio < MEMORISATION_THRESHOLD).double().mean())
        out["memorisation"] = {
            "ratio_median": float(ratio.median()),
            "ratio_mean": float(ratio.mean()),
            "memorised_fraction": memorised,
            "generalisation_score": 1.0 - memorised,
            "threshold": MEMORISATION_THRESHOLD,
        }
    return out
