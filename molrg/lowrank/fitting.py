"""Batched fitting of MoLRG bases: PCA, K-subspaces, diffusion training (spec sections 4, 5, 11).

``fit_batched`` runs B independent trials as one tensor program. Rows of X past ``n_valid[b]``
are zero padding, so fits with different N batch together. All randomness comes from one
``torch.Generator(seed)`` whose draws are shared by the trials (shape (R, ...), broadcast over B):
trial b's fit does not depend on the rest of the batch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from molrg import spec
from molrg.analysis.metrics import subspace_clustering_objective
from molrg.bases import column_mask
from molrg.exceptions import NonZeroMeanWarning
from molrg.lowrank.convergence import optimum_distance
from molrg.lowrank.exact_steps import ExactLossSteps
from molrg.lowrank.initial import initial_bases
from molrg.lowrank.ksubspaces import k_subspaces, valid_rows
from molrg.lowrank.losses import (
    LossCoefficients,
    MinibatchDraws,
    hardmax_loss_and_grad,
    loss_coefficients,
    row_weights,
    softmax_mc_loss,
)
from molrg.lowrank.pca import pca_bases
from molrg.lowrank.stiefel import StiefelOptimizer, relative_eps

METHODS = spec.LOWRANK_METHODS


@dataclass(frozen=True)
class FitProgress:
    """Progress report passed to a fit callback; returning True from the callback stops the fit.

    ``step`` of ``total_steps`` (optimiser steps, K-subspaces iterations, or 1/1 for PCA); restarts
    all run batched in one pass, so ``fraction = step / total_steps`` is the fraction done. A fit
    that ends early (converged) reports a last ``step == total_steps`` = the step it ended at.
    ``loss``: mean over trials of the best restart's diffusion loss (None where there is none);
    ``objective``: mean K-subspaces objective sum_i max_k ||U_k^T x_i||^2 (section 4), else None;
    ``restarts``: restarts per trial run side by side; ``converged``: True on the last report of a fit that
    ended early because every trial passed the convergence test (then ``step == total_steps``, possibly 0).
    """

    step: int
    total_steps: int
    loss: float | None
    objective: float | None = None
    restarts: int = 1
    converged: bool = False

    @property
    def fraction(self) -> float:
        """Fraction of the fit done, in [0, 1] (1 for a fit that ended at step 0: converged at its start)."""
        if self.step >= self.total_steps:
            return 1.0
        return max(self.step / self.total_steps, 0.0)


@dataclass
class BatchFit:
    """Result of :func:`fit_batched` (spec section 5).

    bases (B, K, n, dmax) padded; weights (B, K); loss_history (B, steps_run + 1): the loss after
    0..steps_run updates (best restart), or None; diffusion_loss (B,):
    exact expected hard-max/linear loss (section 4) under the chosen schedule; sc_objective (B,):
    sum_i max_k ||U_k^T x_i||^2; info: JSON-able details (init, winning restart, steps, convergence).
    """

    bases: Tensor
    weights: Tensor
    loss_history: Tensor | None
    diffusion_loss: Tensor
    sc_objective: Tensor
    info: dict[str, Any]
    mean: Tensor | None = None  # (B, n) data mean the bases were fitted about (center=True), else None


Callback = Callable[[FitProgress], bool | None]


def _validate(X: Tensor, dims: Sequence[int], method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options checked against the one declaration (molrg.spec): types, ranges, choices and data rules."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if X.ndim != 3:
        raise ValueError(f"X: expected shape (B, N, n), got {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X: contains NaN or inf")
    options = dict(options)
    nv = options.pop("n_valid", None)  # internal: rows past n_valid[b] are padding (batched trials)
    typed = spec.parse_options(method, options)
    spec.raise_for(spec.fit_errors(method, len(dims), [int(d) for d in dims], typed,
                                   n_features=int(X.shape[-1]), n_samples=int(X.shape[1])))
    opts = {**typed.model_dump(), "n_valid": nv}
    if method == "diffusion" and opts["batch_size"] is None:
        opts["batch_size"] = 64
    nv = opts["n_valid"]
    if nv is not None:
        nv = torch.as_tensor(nv, dtype=torch.int64).reshape(-1)
        if nv.numel() != X.shape[0] or bool((nv < 1).any()) or bool((nv > X.shape[1]).any()):
            raise ValueError(f"n_valid: expected B = {X.shape[0]} ints in [1, N = {X.shape[1]}]")
        opts["n_valid"] = nv.to(X.device)
    if method == "diffusion":
        K = len(dims)
        model = opts["model"] = typed.resolved_model(K)  # type: ignore[attr-defined]
        if opts["init"] is None:
            opts["init"] = "random" if K == 1 else "data"
        if opts["restarts"] is None:
            opts["restarts"] = 1 if (K == 1 or model == "softmax" or opts["init"] in ("ksubspaces", "pca")) else 2
        if opts["lr"] is None:
            # Measured (spec section 11): Adam 0.2 converges on the exact loss in ~900 steps; the
            # Monte-Carlo soft-max loss needs 0.05 to leave a random start but only 0.005 to refine a
            # data-seeded/K-subspaces start (larger steps let the noise pull it off the subspaces).
            if model != "softmax":
                opts["lr"] = 0.2 if opts["optimizer"] == "adam" else 0.5
            else:
                opts["lr"] = (0.05 if opts["init"] == "random" else 0.005) * (1 if opts["optimizer"] == "adam" else 10)
    opts["weighting"] = typed.resolved_weighting(opts.get("model"))  # type: ignore[attr-defined]
    if method == "diffusion" and opts["tol"] is None:
        opts["tol"] = 1e-5
    return opts


def _sigma_data(X: Tensor, opts: dict[str, Any], w: Tensor) -> Tensor | float:
    """sigma_data of the EDM weight: the option (soft-max), or per trial sqrt(tr(X^T X)/(N n)) (B,) (section 2)."""
    if opts.get("sigma_data") is not None:
        return float(opts["sigma_data"])
    return ((w * X.square().sum(-1)).sum(-1) / X.shape[-1]).sqrt().clamp_min(1e-8)


def _coefficients(X: Tensor, opts: dict[str, Any], w: Tensor) -> LossCoefficients:
    """Key-identity coefficients under the chosen schedule, n_quad and weighting (section 4)."""
    sd = _sigma_data(X, opts, w) if opts["weighting"] == "edm" else 0.5
    return loss_coefficients(opts["schedule"], opts["n_quad"], opts["weighting"], sd)


def _center(X: Tensor, valid: Tensor, center: bool) -> tuple[Tensor, Tensor | None]:
    """Subtract each trial's mean over its valid rows (center=True); else warn on a clear non-zero mean.

    The model's subspaces pass through 0 (section 1). A mean is "clear" when it holds over a quarter of
    the energy, f = ||mean||^2 / (tr(X^T X)/N) > 0.25, and is significant, N f > 16 (zero-mean data
    give N f ~ chi^2_r / r-like values of order 1).
    """
    vf = valid.to(X.dtype)[..., None]
    nv = vf.sum(1).clamp_min(1)  # (B, 1)
    mean = (X * vf).sum(1) / nv  # (B, n)
    if center:
        return (X - mean[:, None]) * vf, mean
    f = mean.square().sum(-1) / ((X.square().sum(-1) * vf[..., 0]).sum(-1) / nv[:, 0]).clamp_min(1e-300)
    clear = (f > 0.25) & (nv[:, 0] * f > 16)
    if bool(clear.any()):
        warnings.warn(
            f"{int(clear.sum())} of {X.shape[0]} data set(s) have a clear non-zero mean (||mean||^2 up to "
            f"{float(f.max()):.0%} of the energy) but the subspaces are fitted through 0; pass center=True "
            "to fit about the mean", NonZeroMeanWarning, stacklevel=3)
    return X, None


def _cluster_weights(X: Tensor, U: Tensor, valid: Tensor) -> Tensor:
    """pi_k = fraction of valid samples with k = argmax_l ||U_l^T x_i|| (spec section 6)."""
    E = torch.einsum("bin,bknd->bkid", X, U).square().sum(-1)
    onehot = torch.nn.functional.one_hot(E.argmax(-2), U.shape[1]).to(X.dtype) * valid[..., None]
    return onehot.sum(-2) / valid.sum(-1, keepdim=True).to(X.dtype)


def _train(
    X: Tensor, dims: Sequence[int], opts: dict[str, Any], g: torch.Generator, callback: Callback | None
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Riemannian Adam/SGD on the exact (linear/hard-max) or Monte-Carlo (soft-max) loss (sections 4-5, 11).

    Exact-loss fits are tested at step 0 and every callback_every steps (molrg.lowrank.convergence):
    a fit whose restarts are all within tol of a local optimum stops there (its bases are kept and
    it leaves the batch), so a warm start at the optimum does not move. Adam's eps is relative to
    each trial's gradient scale 2 kappa tr(X^T X)/N (sqrt of the dtype's eps), so round-off at an
    optimum is not normalised into a full step.
    """
    B, N, n = X.shape
    K, R, T = len(dims), opts["restarts"], opts["steps"]
    model = opts["model"]
    exact = model != "softmax"
    valid = valid_rows(X, opts["n_valid"])
    w = row_weights(X, opts["n_valid"])  # (B, N)
    U, info = initial_bases(X, dims, opts["init"], R, g, valid, opts["n_valid"])
    coef = _coefficients(X, opts, w)
    history = torch.zeros(B, T + 1, dtype=X.dtype, device=X.device)  # loss after j = 0..T updates
    lr0, every, tol = float(opts["lr"]), int(opts["callback_every"]), opts["tol"]
    if exact:  # fused steps in frame layout (molrg.lowrank.exact_steps), equal to StiefelOptimizer's
        fits = ExactLossSteps(U, X, w, dims, coef, opts["optimizer"], opts["retraction"])
    else:
        kappa = torch.as_tensor(coef.kappa, dtype=X.dtype, device=X.device).expand(B)  # (B,)
        energy = (w * X.square().sum(-1)).sum(-1)  # (B,) tr(X^T X)/N
        scale = (2 * kappa * energy).clamp_min(torch.finfo(X.dtype).tiny)  # gradient scale per trial
        opt = StiefelOptimizer(dims, opts["optimizer"], opts["retraction"], eps=relative_eps(scale).view(B, 1, 1, 1, 1))
        sgd_scale = (scale / 2).view(B, 1, 1, 1, 1)
        draws = MinibatchDraws(X, valid, opts["schedule"], opts["weighting"], _sigma_data(X, opts, w))
        log_pi = X.new_full((K,), -math.log(K))
        M = opts["batch_size"]

    # Active set: trials still training. Finished ones keep their bases in U_out and their last loss.
    act = torch.arange(B, device=X.device)
    Ua = U
    U_out = U.clone()
    frozen = torch.zeros(B, R, dtype=torch.bool, device=X.device)
    any_frozen = False  # whether an active fit has a frozen restart (known on the host at each check)
    dist = torch.full((B, R), float("inf"), dtype=X.dtype, device=X.device)
    done_step = torch.full((B,), T, dtype=torch.long, device=X.device)
    done_loss = torch.zeros(B, dtype=X.dtype, device=X.device)
    steps_run, stopped, all_done = 0, False, False
    for i in range(1, T + 1):  # update i moves U_{i-1} to U_i
        if exact:
            loss = fits.loss()
            Ua = fits.U
        else:
            x0, s_t, g_t, lam, e = draws(g, R, M)
            Ug = Ua.detach().requires_grad_(True)
            loss = softmax_mc_loss(Ug, x0, s_t, g_t, e, dims, log_pi, lam)
            (egrad,) = torch.autograd.grad(loss.sum(), Ug)
            loss = loss.detach()
        best_loss = loss.min(-1).values
        history[act, i - 1] = best_loss
        if exact and (i == 1 or (i - 1) % every == 0):
            d_a = optimum_distance(Ua, fits.X, fits.w, dims)  # the active fits' data, kept by fits
            fa = frozen[act] | (d_a < tol)
            frozen[act], dist[act] = fa, torch.where(frozen[act], dist[act], d_a)
            fin = fa.all(-1)
            if bool(fin.any()):
                rows, keep = fin.nonzero().squeeze(-1), (~fin).nonzero().squeeze(-1)
                b_fin = act[rows]
                U_out[b_fin], done_step[b_fin], done_loss[b_fin] = Ua[rows], i - 1, best_loss[rows]
                act, best_loss = act[keep], best_loss[keep]
                fits.keep(keep)
                Ua = fits.U
                all_done = act.numel() == 0
            any_frozen = R > 1 and bool(frozen[act].any())
        if (i > 1 and (i - 1) % every == 0) or all_done:
            cur = done_loss.clone()
            cur[act] = best_loss
            total = i - 1 if all_done else T  # an early stop is the last step: the report reads step/step
            if callback is not None and callback(FitProgress(i - 1, total, float(cur.mean()), None, R, all_done)):
                stopped = not all_done
            if stopped or all_done:
                break
        lr = lr0 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (i - 1) / T)))  # cosine decay
        if exact:
            fits.step(lr, frozen=frozen[act] if any_frozen else None)
        else:
            if opts["optimizer"] == "sgd":
                egrad = egrad / sgd_scale  # scale-free step: the gradient over kappa tr(X^T X)/N (per trial)
            Ua, _ = opt.step(Ua, egrad, lr)
        steps_run = i
    if exact and act.numel():
        Ua = fits.U
    if act.numel():
        U_out[act] = Ua
        if exact and not stopped:
            d_a = optimum_distance(Ua, fits.X, fits.w, dims)
            dist[act] = torch.where(frozen[act], dist[act], d_a)
            frozen[act] = frozen[act] | (d_a < tol)
    U = U_out
    hist = history[:, : steps_run + 1]
    if exact:
        later = torch.arange(steps_run + 1, device=X.device)[None, :] > done_step[:, None]
        hist = torch.where(later, done_loss[:, None], hist)
    # Winner per trial: lowest final loss (exact, or a fixed-draw Monte-Carlo estimate for soft-max).
    if model == "softmax":
        ge = torch.Generator().manual_seed(int(g.initial_seed()) + 1)
        x0, s_t, g_t, lam, e = draws(ge, 1, 512)
        with torch.no_grad():
            final = softmax_mc_loss(U, x0.expand(B, R, 512, n), s_t.expand(B, R, 512), g_t.expand(B, R, 512),
                                    e.expand(B, R, 512, n), dims, log_pi, lam.expand(B, R, 512))
    else:
        final, _, _ = hardmax_loss_and_grad(U, X, dims, coef, w)
    best = final.argmin(-1)
    bi = torch.arange(B, device=X.device)
    if steps_run == T and not stopped:
        hist[:, T] = final[bi, best]
        if callback is not None:
            callback(FitProgress(T, T, float(hist[:, T].mean()), None, R))
    info.update(
        model=model, init=opts["init"], restarts=R, steps_run=steps_run, stopped=stopped,
        best_restart=best.tolist(), final_loss=final[bi, best].tolist(),
    )
    if exact:
        info.update(optimum_distance=dist[bi, best].tolist(), converged=frozen[bi, best].tolist(),
                    steps_to_converge=torch.where(done_step < T, done_step, -1).tolist())
    return U[bi, best], hist, info


def fit_batched(
    X: Tensor,
    dims: Sequence[int],
    method: str,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    callback: Callback | None = None,
    **options: Any,
) -> BatchFit:
    """Fit B independent MoLRG models at once by PCA, K-subspaces or diffusion training (spec section 5).

    Parameters
    ----------
    X : Tensor of shape (B, N, n); rows past ``n_valid[b]`` are zero padding (ignored)
    dims : d_k per component (K entries, shared by the batch)
    method : "pca" (K = 1), "subspace_clustering" or "diffusion"
    seed : seed of the one torch.Generator used by the fit (inits, restarts, Monte-Carlo draws)
    callback : f(FitProgress) -> bool; True stops the fit early (info["stopped"] = True)
    options : common: n_valid (B ints), center (default False: the paper's model, subspaces through 0;
        True subtracts each trial's mean first, returned as BatchFit.mean; without it a clear non-zero
        mean raises a NonZeroMeanWarning), schedule ("vp"|"ve"|"edm"), weighting ("unit"|"edm";
        default "edm" for the soft-max model, else "unit"; "edm" uses sigma_data, the option for the
        soft-max model, else the per-trial data scale sqrt(tr(X^T X)/(N n))), n_quad;
        subspace_clustering: n_restarts, max_iter, init ("data"|"random");
        diffusion: model ("auto": linear for K = 1, hardmax for K >= 2 | "linear" | "hardmax" |
        "softmax"), lr, steps, restarts, init ("random"|"data"|"pca": the top-d principal subspace for
        K = 1, K-subspaces inside the top-(sum d_k) principal subspace for K >= 2|"ksubspaces":
        K-subspaces with 10 data-seeded restarts), batch_size (soft-max only), optimizer ("adam"|"sgd"), retraction
        ("qr"|"polar"), tol (exact-loss models only), callback_every, sigma_data (soft-max only).
        Soft-max training draws t from the schedule's p(t) and weights the error by lambda_t; the
        exact losses integrate both by quadrature (n_quad nodes). Options that would change
        nothing for the chosen model are refused.
        Diffusion defaults: steps 2000; an exact-loss fit stops at the first check (step 0, then
        every callback_every steps) where its estimated distance to a local optimum (Davis-Kahan,
        molrg.lowrank.convergence) is < tol = 1e-5, and info["converged"] says whether it got there;
        init "random" for K = 1 else "data", restarts 1 for K = 1 / soft-max / ksubspaces or pca
        init else 2, Adam lr 0.2
        (exact loss) or 0.05 / 0.005 (soft-max from random / seeded init).

    Returns
    -------
    BatchFit
    """
    dims = [int(d) for d in dims]
    X = torch.as_tensor(X)
    X = X.to(device=device if device is not None else X.device, dtype=dtype or (X.dtype if X.is_floating_point() else torch.float32))
    opts = _validate(X, dims, method, options)
    B = X.shape[0]
    valid = valid_rows(X, opts["n_valid"])
    X, mean = _center(X, valid, bool(opts.get("center", False)))
    g = torch.Generator().manual_seed(int(seed))
    history: Tensor | None = None
    info: dict[str, Any] = {"method": method, "seed": int(seed), "stopped": False}
    if method == "pca":
        U = pca_bases(X, dims[0])
        if callback is not None:
            info["stopped"] = bool(callback(FitProgress(1, 1, None)))
    elif method == "subspace_clustering":
        stop = {"flag": False}

        def ks_cb(it: int, total: int, obj: float) -> bool:
            if callback is not None and callback(FitProgress(it, total, None, obj, opts["n_restarts"])):
                stop["flag"] = True
            return stop["flag"]

        ks = k_subspaces(
            X, dims, n_restarts=opts["n_restarts"], max_iter=opts["max_iter"], seed=int(seed),
            n_valid=opts["n_valid"], init=opts["init"], callback=ks_cb if callback is not None else None,
        )
        U = ks.bases
        info.update(
            init=opts["init"], n_restarts=opts["n_restarts"], iterations=ks.n_iter, stopped=stop["flag"],
            best_restart=ks.best_restart.tolist(), converged=ks.converged.tolist(),
        )
    else:
        U, history, tinfo = _train(X, dims, opts, g, callback)
        info.update(tinfo)
    U = U.to(X.dtype) * column_mask(dims, max(dims), like=X)
    w = row_weights(X, opts["n_valid"])
    dloss = hardmax_loss_and_grad(U, X, dims, _coefficients(X, opts, w), w)[0]
    if method == "diffusion" and opts["model"] == "softmax":
        weights = X.new_full((B, len(dims)), 1.0 / len(dims))
    else:
        weights = _cluster_weights(X, U, valid)
    info.update(schedule=opts["schedule"], weighting=opts["weighting"])
    info.update(center=mean is not None)
    return BatchFit(
        bases=U, weights=weights, loss_history=history, diffusion_loss=dloss,
        sc_objective=subspace_clustering_objective(X, U), info=info, mean=mean,
    )
