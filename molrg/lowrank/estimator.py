"""sklearn-style facade over :func:`molrg.lowrank.fitting.fit_batched` (spec sections 3, 5, 8)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molrg import spec
from molrg.bases import pad_bases, unpad_bases
from molrg.exceptions import ConvergenceWarning
from molrg.lowrank.fitting import METHODS, Callback, fit_batched


class NotFittedError(ValueError, RuntimeError):
    """The estimator was used before ``fit`` (or ``from_bases``)."""


class MoLRGDiffusion:
    """Fit a K-component low-rank mixture of Gaussians by diffusion training, PCA or K-subspaces (section 5).

    Parameters
    ----------
    n_components : K
    dims : d_k per component (K ints, each < n)
    method : "diffusion" | "pca" | "subspace_clustering"
    seed : seed of the fit's torch.Generator
    device : torch device for fitting
    options : forwarded to :func:`molrg.lowrank.fitting.fit_batched` (validated there at fit time);
        ``center=True`` fits x = mean_ + U_k a (denoise and sample shift by ``mean_``)

    After ``fit``: ``bases_``, ``weights_``, ``mean_`` (None unless centred), ``converged_`` (the fit's
    convergence test; None where it has none, e.g. the Monte-Carlo soft-max model; False also emits
    a :class:`molrg.exceptions.ConvergenceWarning`), ``loss_history_``, ``objectives_``, ``info_``.
    """

    def __init__(
        self,
        n_components: int,
        dims: Sequence[int],
        method: str = "diffusion",
        seed: int = 0,
        device: torch.device | str | None = None,
        **options: Any,
    ) -> None:
        self.n_components = n_components
        self.dims = dims
        self.method = method
        self.seed = seed
        self.device = device
        self.options = options

    def get_config(self) -> dict[str, Any]:
        """JSON-able hyperparameters (tensors in options become lists)."""
        opts = {k: (v.tolist() if isinstance(v, Tensor | np.ndarray) else v) for k, v in self.options.items()}
        return {
            "n_components": int(self.n_components),
            "dims": [int(d) for d in self.dims],
            "method": self.method,
            "seed": int(self.seed),
            "device": None if self.device is None else str(self.device),
            "options": opts,
        }

    def _validate(self, X: Any) -> Tensor:
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        dims = [int(d) for d in self.dims]
        if int(self.n_components) < 1 or len(dims) != int(self.n_components):
            raise ValueError(f"dims: expected n_components = {self.n_components} entries, got {dims}")
        if not 0 <= int(self.seed) <= spec.SEED_MAX:
            raise ValueError(f"seed: expected an int in [0, 2**63 - 1], got {self.seed}")
        Xt = torch.as_tensor(np.asarray(X) if not isinstance(X, Tensor) else X)
        if Xt.ndim != 2:
            raise ValueError(f"X: expected a 2-D array (N, n), got shape {tuple(Xt.shape)}")
        if Xt.shape[0] < 1:
            raise ValueError("X: need at least one sample (N >= 1)")
        if not Xt.is_floating_point():
            Xt = Xt.to(torch.float64)
        if not bool(torch.isfinite(Xt).all()):
            raise ValueError("X: contains NaN or inf")
        n = Xt.shape[1]
        if any(d < 1 or d >= n for d in dims):
            raise ValueError(f"dims: each d_k must satisfy 1 <= d_k < n = {n}, got {dims}")
        return Xt

    def fit(self, X: Any, callback: Callback | None = None) -> MoLRGDiffusion:
        """Fit on X of shape (N, n) (tensor or array); returns self."""
        Xt = self._validate(X)
        dims = [int(d) for d in self.dims]
        res = fit_batched(Xt[None], dims, self.method, seed=int(self.seed), device=self.device,
                          callback=callback, **self.options)
        self.n_features_in_ = int(Xt.shape[1])
        self.bases_ = [U.detach().clone() for U in unpad_bases(res.bases[0], dims)]
        self.weights_ = [float(w) for w in res.weights[0]]
        if self.method == "pca" or (self.method == "diffusion" and len(dims) == 1):
            self.weights_ = [1.0]
        self.loss_history_ = [] if res.loss_history is None else [float(v) for v in res.loss_history[0]]
        from molrg.analysis.metrics import explained_energy

        self.mean_ = None if res.mean is None else res.mean[0].detach().clone()
        Xc = Xt.to(device=res.bases.device, dtype=res.bases.dtype)
        Xc = Xc if self.mean_ is None else Xc - self.mean_
        self.objectives_ = {
            "diffusion_loss": float(res.diffusion_loss[0]),
            "subspace_clustering_objective": float(res.sc_objective[0]),
            "explained_energy": float(explained_energy(Xc, res.bases[0])),
        }
        self.info_ = _first_trial(res.info)
        self.stopped_ = bool(res.info.get("stopped", False))
        conv = self.info_.get("converged")
        self.converged_ = None if conv is None else bool(conv)
        if self.converged_ is False and not self.stopped_:
            warnings.warn(
                f"{self.method} fit did not converge in {self.info_.get('steps_run', self.info_.get('iterations'))} "
                f"steps (estimated distance to an optimum {self.info_.get('optimum_distance', float('nan')):.2g}); "
                "raise steps/max_iter, or try another init or more restarts", ConvergenceWarning, stacklevel=2)
        return self

    @classmethod
    def from_bases(
        cls, bases: Sequence[Tensor] | Sequence[np.ndarray], weights: Sequence[float] | None = None,
        mean: Any = None, **kwargs: Any,
    ) -> MoLRGDiffusion:
        """Rebuild a fitted model from stored bases (list of (n, d_k)), weights pi_k and optional mean (n,)."""
        Us = [torch.as_tensor(np.asarray(U) if not isinstance(U, Tensor) else U) for U in bases]
        if not Us or any(U.ndim != 2 or U.shape[0] != Us[0].shape[0] for U in Us):
            raise ValueError("bases: expected a non-empty list of (n, d_k) arrays with a common n")
        K = len(Us)
        w = [1.0 / K] * K if weights is None else [float(v) for v in weights]
        if len(w) != K or any(v < 0 for v in w) or sum(w) <= 0:
            raise ValueError(f"weights: expected {K} non-negative numbers with positive sum, got {w}")
        model = cls(K, [int(U.shape[1]) for U in Us], **kwargs)
        model.bases_ = [U.clone() for U in Us]
        model.weights_ = [v / sum(w) for v in w]
        model.n_features_in_ = int(Us[0].shape[0])
        model.loss_history_, model.objectives_, model.info_, model.stopped_ = [], {}, {"from_bases": True}, False
        model.converged_ = None
        model.mean_ = None if mean is None else torch.as_tensor(
            np.asarray(mean) if not isinstance(mean, Tensor) else mean).reshape(-1).to(Us[0].dtype)
        if model.mean_ is not None and model.mean_.numel() != model.n_features_in_:
            raise ValueError(f"mean: expected {model.n_features_in_} entries, got {model.mean_.numel()}")
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "bases_"):
            raise NotFittedError("This MoLRGDiffusion instance is not fitted yet; call fit(X) or from_bases(...)")

    def _denoiser(self):
        from molrg.lowrank.analytic import exact_denoiser

        return exact_denoiser(self.bases_, self.weights_)

    def denoise(self, x_t: Any, sigma: float | Tensor) -> Tensor:
        """Fitted posterior mean E[x0 | x_t], VE convention x_t = x0 + sigma eps (section 3): (M, n) -> (M, n)."""
        self._check_fitted()
        x = torch.as_tensor(np.asarray(x_t) if not isinstance(x_t, Tensor) else x_t)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(f"x_t: expected shape (M, {self.n_features_in_}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            x = x.to(torch.float64)
        from molrg.lowrank.analytic import posterior_mean

        U = pad_bases([B.to(dtype=x.dtype, device=x.device) for B in self.bases_])
        log_pi = torch.log(torch.as_tensor(self.weights_, dtype=x.dtype, device=x.device).clamp_min(1e-300))
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        mu = self._mean(x)
        return mu + posterior_mean(x - mu, U, [int(B.shape[1]) for B in self.bases_], log_pi, 1.0, sig)

    def _mean(self, like: Tensor) -> Tensor:
        """The fitted mean (center=True), else 0; shifts x_t = x0 + sigma eps exactly (VE convention)."""
        mean = getattr(self, "mean_", None)
        return like.new_zeros(()) if mean is None else mean.to(dtype=like.dtype, device=like.device)

    def sample(self, n_samples: int, seed: int = 0, sampler: str = "heun", steps: int = 18,
               callback: Callable[[dict[str, Any]], Any] | None = None) -> Tensor:
        """Draw samples by reverse-time integration of the fitted denoiser (section 8): (n_samples, n).

        ``callback`` gets k-diffusion's per-step dict (``i``, ``sigma``, ``x``, ``denoised``; about the
        mean when fitted with center=True); raising from it stops sampling.
        """
        self._check_fitted()
        from molrg.sampling.samplers import sample

        x = sample(self._denoiser(), int(n_samples), self.n_features_in_, sampler=sampler, steps=steps,
                   seed=int(seed), device=self.bases_[0].device, callback=callback)
        return x + self._mean(x)


def _first_trial(info: dict[str, Any]) -> dict[str, Any]:
    """Per-trial lists of a batch-of-one fit become scalars."""
    return {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in info.items()}
