"""Batched fitting of MoLRG bases: PCA, K-subspaces, diffusion training (spec sections 4, 5, 11).

``fit_batched`` runs B independent trials as one tensor program. Rows of X past ``n_valid[b]``
are zero padding, so fits with different N batch together. All randomness comes from one
``torch.Generator(seed)`` whose draws are shared by the trials (shape (R, ...), broadcast over B):
trial b's fit does not depend on the rest of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from molrg import spec
from molrg.analysis.metrics import subspace_clustering_objective
from molrg.bases import column_mask
from molrg.lowrank.ksubspaces import k_subspaces, seed_bases, valid_rows
from molrg.lowrank.losses import (
    LossCoefficients,
    hardmax_loss_and_grad,
    loss_coefficients,
    row_weights,
    softmax_mc_loss,
)
from molrg.lowrank.pca import pca_bases
from molrg.lowrank.stiefel import StiefelOptimizer, random_stiefel
from molrg.sampling.schedules import get_schedule, loss_weight

METHODS = spec.LOWRANK_METHODS
KSUBSPACES_INIT_RESTARTS = 10  # restarts of the K-subspaces run behind init="ksubspaces"


@dataclass(frozen=True)
class FitProgress:
    """Progress report passed to a fit callback; returning True from the callback stops the fit.

    ``step`` of ``total_steps`` (optimiser steps, K-subspaces iterations, or 1/1 for PCA); restarts
    all run batched in one pass, so ``fraction = step / total_steps`` is the fraction done. A fit
    that ends early (converged) reports a last ``step == total_steps`` = the step it ended at.
    ``loss``: mean over trials of the best restart's diffusion loss (None where there is none);
    ``objective``: mean K-subspaces objective sum_i max_k ||U_k^T x_i||^2 (section 4), else None;
    ``restarts``: restarts per trial run side by side.
    """

    step: int
    total_steps: int
    loss: float | None
    objective: float | None = None
    restarts: int = 1

    @property
    def fraction(self) -> float:
        """Fraction of the fit done, in [0, 1]."""
        return min(max(self.step / max(self.total_steps, 1), 0.0), 1.0)


@dataclass
class BatchFit:
    """Result of :func:`fit_batched` (spec section 5).

    bases (B, K, n, dmax) padded; weights (B, K); loss_history (B, T) or None; diffusion_loss (B,):
    exact expected hard-max/linear loss (section 4) under the chosen schedule; sc_objective (B,):
    sum_i max_k ||U_k^T x_i||^2; info: JSON-able details (init, winning restart, steps, convergence).
    """

    bases: Tensor
    weights: Tensor
    loss_history: Tensor | None
    diffusion_loss: Tensor
    sc_objective: Tensor
    info: dict[str, Any]


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
            opts["restarts"] = 1 if (K == 1 or model == "softmax" or opts["init"] == "ksubspaces") else 2
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


def _cluster_weights(X: Tensor, U: Tensor, valid: Tensor) -> Tensor:
    """pi_k = fraction of valid samples with k = argmax_l ||U_l^T x_i|| (spec section 6)."""
    E = torch.einsum("bin,bknd->bkid", X, U).square().sum(-1)
    onehot = torch.nn.functional.one_hot(E.argmax(-2), U.shape[1]).to(X.dtype) * valid[..., None]
    return onehot.sum(-2) / valid.sum(-1, keepdim=True).to(X.dtype)


def _initial_bases(
    X: Tensor, dims: Sequence[int], init: str, R: int, g: torch.Generator, valid: Tensor, opts: dict[str, Any]
) -> tuple[Tensor, dict[str, Any]]:
    """Initial bases (B, R, K, n, dmax) for diffusion training (spec section 4, remedies of local minima)."""
    B, _, n = X.shape
    K, dmax = len(dims), max(dims)
    info: dict[str, Any] = {}
    if init == "random":
        U = random_stiefel((R, K, n, dmax), dims, g, torch.float64).expand(B, R, K, n, dmax)
    elif init == "data":
        U = seed_bases(X, dims, R, g, valid)
    elif init == "pca":
        P = pca_bases(X.to(torch.float64), min(sum(dims), n - 1))[:, 0]  # (B, n, D) top principal subspace
        D = P.shape[-1]
        rot = random_stiefel((R, 1, D, D), [D], g, torch.float64)[:, 0]  # restart 0 keeps the PCA order
        rot[0] = torch.eye(D, dtype=torch.float64)
        Q = torch.einsum("bnd,rde->brne", P, rot)
        U = torch.zeros(B, R, K, n, dmax, dtype=torch.float64)
        start = 0
        for k, d_k in enumerate(dims):
            cols = [(start + j) % D for j in range(d_k)]
            U[:, :, k, :, :d_k] = Q[..., cols]
            start += d_k
    else:
        ks = k_subspaces(X, dims, n_restarts=KSUBSPACES_INIT_RESTARTS, seed=int(g.initial_seed()), n_valid=opts["n_valid"])
        U = ks.bases.to(torch.float64)[:, None].expand(B, R, K, n, dmax)
        info["ksubspaces_objective"] = ks.objective.tolist()
    return (U * column_mask(dims, dmax, like=U)).to(device=X.device, dtype=X.dtype).contiguous(), info


def _train(
    X: Tensor, dims: Sequence[int], opts: dict[str, Any], g: torch.Generator, callback: Callback | None
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Riemannian Adam/SGD on the exact (linear/hard-max) or Monte-Carlo (soft-max) loss (sections 4-5, 11)."""
    B, N, n = X.shape
    K, R, T = len(dims), opts["restarts"], opts["steps"]
    model = opts["model"]
    valid = valid_rows(X, opts["n_valid"])
    w = row_weights(X, opts["n_valid"])  # (B, N)
    U, info = _initial_bases(X, dims, opts["init"], R, g, valid, opts)
    opt = StiefelOptimizer(dims, opts["optimizer"], opts["retraction"])
    coef = _coefficients(X, opts, w)
    kappa = torch.as_tensor(coef.kappa, dtype=X.dtype, device=X.device).expand(B)  # (B,)
    energy = (w * X.square().sum(-1)).sum(-1)  # (B,) tr(X^T X)/N
    history = torch.zeros(B, T, dtype=X.dtype, device=X.device)
    lr0 = float(opts["lr"])
    if model == "softmax":
        nv = valid.sum(-1).to(X.dtype)
        sched = get_schedule(opts["schedule"])
        sd = _sigma_data(X, opts, w)
        sigma_data = sd[:, None, None] if isinstance(sd, Tensor) else sd
        log_pi = X.new_full((K,), -math.log(K))
        M = opts["batch_size"]

        def draws(gen: torch.Generator, Rd: int, Md: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
            """Minibatch x0 (B, Rd, Md, n), s_t, gamma_t, lambda_t and eps from the schedule's p(t) (section 2)."""
            u = torch.rand((Rd, Md), generator=gen, dtype=torch.float64).to(X.device)
            idx = (u[None] * nv[:, None, None]).long().clamp_max(N - 1).reshape(B, Rd * Md)
            x0 = torch.gather(X, 1, idx[..., None].expand(B, Rd * Md, n)).view(B, Rd, Md, n)
            t = sched.sample_t(Rd * Md, gen).reshape(Rd, Md).to(X.device)
            s_t, g_t = sched.s(t).to(X.dtype), sched.gamma(t).to(X.dtype)
            lam = loss_weight(opts["weighting"], s_t, g_t, sigma_data)
            eps = torch.randn((Rd, Md, n), generator=gen, dtype=torch.float64).to(X)
            return x0, s_t.expand(B, Rd, Md), g_t.expand(B, Rd, Md), lam.expand(B, Rd, Md), eps.expand(B, Rd, Md, n)

    step, stopped, conv = 0, False, torch.zeros(B, R, dtype=torch.bool, device=X.device)
    gnorm = torch.full((B, R), float("inf"), dtype=X.dtype, device=X.device)
    for step in range(1, T + 1):
        lr = lr0 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (step - 1) / T)))  # cosine decay
        if model == "softmax":
            x0, s_t, g_t, lam, eps = draws(g, R, M)
            Ug = U.detach().requires_grad_(True)
            loss = softmax_mc_loss(Ug, x0, s_t, g_t, eps, dims, log_pi, lam)
            (egrad,) = torch.autograd.grad(loss.sum(), Ug)
            loss = loss.detach()
        else:
            loss, egrad, _ = hardmax_loss_and_grad(U, X, dims, coef, w)
        if opts["optimizer"] == "sgd":
            # Scale-free step: gradient of the loss normalised by kappa tr(X^T X)/N (per trial).
            egrad = egrad / (kappa.clamp_min(1e-30) * energy.clamp_min(1e-30))[:, None, None, None, None]
        U, rgrad = opt.step(U, egrad, lr)
        history[:, step - 1] = loss.min(-1).values
        if model != "softmax":
            gnorm = rgrad.flatten(2).norm(dim=-1) / (2 * kappa * energy.clamp_min(1e-30))[:, None]
            conv = gnorm < opts["tol"]
        if step % opts["callback_every"] == 0 or step == T:
            done = model != "softmax" and bool(conv.all())
            total = step if done else T  # an early stop is the last step: the report reads step/step
            if callback is not None and callback(FitProgress(step, total, float(history[:, step - 1].mean()), None, R)):
                stopped = not done
                break
            if done:
                break
    # Winner per trial: lowest final loss (exact, or a fixed-draw Monte-Carlo estimate for soft-max).
    if model == "softmax":
        ge = torch.Generator().manual_seed(int(g.initial_seed()) + 1)
        x0, s_t, g_t, lam, eps = draws(ge, 1, 512)
        with torch.no_grad():
            final = softmax_mc_loss(U, x0.expand(B, R, 512, n), s_t.expand(B, R, 512), g_t.expand(B, R, 512),
                                    eps.expand(B, R, 512, n), dims, log_pi, lam.expand(B, R, 512))
    else:
        final, _, _ = hardmax_loss_and_grad(U, X, dims, coef, w)
    best = final.argmin(-1)
    bi = torch.arange(B, device=X.device)
    info.update(
        model=model, init=opts["init"], restarts=R, steps_run=step, stopped=stopped,
        best_restart=best.tolist(), final_loss=final[bi, best].tolist(),
    )
    if model != "softmax":
        info.update(grad_norm=gnorm[bi, best].tolist(), converged=conv[bi, best].tolist())
    return U[bi, best], history[:, :step], info


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
    options : common: n_valid (B ints), schedule ("vp"|"ve"|"edm"), weighting ("unit"|"edm"; default
        "edm" for the soft-max model, else "unit"), n_quad, sigma_data (weighting "edm" only; default
        the per-trial data scale sqrt(tr(X^T X)/(N n)));
        subspace_clustering: n_restarts, max_iter, init ("data"|"random");
        diffusion: model ("auto": linear for K = 1, hardmax for K >= 2 | "linear" | "hardmax" |
        "softmax"), lr, steps, restarts, init ("random"|"data"|"pca"|"ksubspaces": K-subspaces with
        10 data-seeded restarts), batch_size (soft-max only), optimizer ("adam"|"sgd"), retraction
        ("qr"|"polar"), tol (exact-loss models only), callback_every.
        Soft-max training draws t from the schedule's p(t) and weights the error by lambda_t; the
        exact losses integrate both by quadrature (n_quad nodes). Options that would change
        nothing for the chosen model are refused.
        Diffusion defaults: steps 2000 (stops early once every trial's relative Riemannian gradient
        norm < tol = 1e-5), init "random" for K = 1 else "data", restarts 1 for K = 1 / soft-max
        else 2, Adam lr 0.2 (exact loss) or 0.05 / 0.005 (soft-max from random / seeded init).

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
    return BatchFit(
        bases=U, weights=weights, loss_history=history, diffusion_loss=dloss,
        sc_objective=subspace_clustering_objective(X, U), info=info,
    )
