"""Figures of a finished job, rendered in the worker (matplotlib Agg) and stored as PNG bytes (``db.models.Plot``).

Fit jobs: ``loss`` (training loss per step), ``projection`` (training data and model samples in the
coordinates of their component's basis, coloured by component), ``jacobian`` (numerical rank ratio of
the fitted denoiser's Jacobian against the noise level, spec section 9, with the plateaus ``d_k/n`` and
``sum(d_k)/n``); for neural and empirical fits the same three from the network (``neural_fit_figures``).
Sample jobs on square images (``n`` a perfect square such as 8x8 digits): ``grid``
(samples beside their nearest training images, with the memorisation ratio, spec section 8) and
``editing`` (a sample moved along the basis directions of its component, spec section 10).
"""

import io
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from workers.plots import png_size  # noqa: E402

log = logging.getLogger(__name__)
DPI = 100
COLOURS = plt.get_cmap("tab10")


@dataclass
class Figure:
    kind: str
    title: str
    png: bytes
    width: int
    height: int


def _save(fig: Any, kind: str, title: str) -> Figure:
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        data = buf.getvalue()
    finally:
        plt.close(fig)
    width, height = png_size(data)
    return Figure(kind, title, data, width, height)


def loss_png(history: Sequence[float], *, method: str = "", width: int = 800, height: int = 500) -> Figure:
    """The training loss per step (log scale when positive)."""
    h = np.asarray(history, dtype=float)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0.12, 0.12, 0.83, 0.78))
    ax.plot(np.arange(len(h)), h, color="C0", linewidth=1.5)
    if len(h) and np.all(h[np.isfinite(h)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    title = f"training loss ({method}, {len(h)} steps, final {h[-1]:.4g})" if len(h) else "training loss"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return _save(fig, "loss", title)


def assign(X: np.ndarray, bases: Sequence[np.ndarray]) -> np.ndarray:
    """Component of each row: argmax_k ||U_k^T x||."""
    energy = np.stack([np.linalg.norm(X @ U, axis=1) for U in bases], axis=1)
    return np.argmax(energy, axis=1)


def projection_png(X: np.ndarray, samples: np.ndarray, bases: Sequence[np.ndarray], *, width: int = 1000,
                   height: int = 480) -> Figure:
    """Training data (left) and samples (right) in the first two coordinates U_k^T x of their component."""
    fig, axes = plt.subplots(1, 2, figsize=(width / DPI, height / DPI), dpi=DPI, sharex=True, sharey=True)
    for ax, pts, name in ((axes[0], X, "training data"), (axes[1], samples, "model samples")):
        labels = assign(pts, bases)
        for k, U in enumerate(bases):
            sel = pts[labels == k] @ U
            if sel.shape[0] == 0:
                continue
            y = sel[:, 1] if sel.shape[1] > 1 else np.zeros(len(sel))
            ax.scatter(sel[:, 0], y, s=10, alpha=0.7, color=COLOURS(k % 10), label=f"component {k} (d={U.shape[1]})")
        ax.set_title(f"{name} ({len(pts)})")
        ax.set_xlabel("coordinate 1 in its component's basis")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("coordinate 2")
    axes[0].legend(loc="best", fontsize=8)
    # Fixed margins: tight_layout measures every tick label and took ~0.1 s of a ~0.15 s figure.
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.11, top=0.92, wspace=0.08)
    return _save(fig, "projection", "training data and samples projected onto the fitted bases")


def jacobian_png(result: dict[str, Any], dims: Sequence[int], *, width: int = 800, height: int = 500) -> Figure:
    """Rank ratio rank/n of the denoiser Jacobian vs sigma, with the d_k/n and sum(d_k)/n plateaus."""
    n = int(result["n"])
    sig = np.asarray(result["sigmas"], dtype=float)
    ratio = np.asarray(result["rank_ratio"], dtype=float)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0.12, 0.12, 0.83, 0.78))
    ax.plot(sig, ratio, "o-", color="C0", label="rank / n (mean over trajectories)")
    for d in sorted(set(int(d) for d in dims)):
        ax.axhline(d / n, color="C2", linestyle="--", linewidth=1, label=f"d/n = {d}/{n}")
    if len(dims) > 1:
        ax.axhline(sum(dims) / n, color="C3", linestyle=":", linewidth=1.5, label=f"sum d_k / n = {sum(dims)}/{n}")
    ax.set_xscale("log")
    ax.set_xlabel("noise level sigma")
    ax.set_ylabel("Jacobian rank ratio")
    ax.set_ylim(0, max(1.05 * float(ratio.max(initial=0.0)), 1.2 * sum(dims) / n))
    ax.legend(loc="best", fontsize=8)
    ax.grid(True, alpha=0.3)
    title = f"denoiser Jacobian rank vs noise level (energy {result.get('energy', 0.99)})"
    ax.set_title(title)
    return _save(fig, "jacobian", title)


def warm() -> None:
    """Draw one small figure and discard it, so fonts and text caches load once (in the worker parent)."""
    fig = plt.figure(figsize=(2, 1.5), dpi=DPI)
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 0.1])
    ax.scatter([0.5], [0.5], s=10)
    ax.set_yscale("log")
    ax.set_title("warm-up")
    ax.set_xlabel("x")
    ax.legend(["a"], fontsize=8)
    _save(fig, "warm", "warm-up")


def image_side(n: int) -> int | None:
    side = int(round(math.sqrt(n)))
    return side if side * side == n and side >= 4 else None


def memorisation(samples: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest training index and ratio d1/d2 (nearest over second nearest) per sample (spec section 8)."""
    d2 = (samples**2).sum(1)[:, None] - 2 * samples @ X.T + (X**2).sum(1)[None, :]
    d = np.sqrt(np.maximum(d2, 0.0))
    order = np.argsort(d, axis=1)
    first = d[np.arange(len(d)), order[:, 0]]
    second = d[np.arange(len(d)), order[:, 1]] if X.shape[0] > 1 else np.full(len(d), np.inf)
    return order[:, 0], first / np.maximum(second, 1e-12)


def grid_png(samples: np.ndarray, X: np.ndarray, *, count: int = 16, width: int = 1000,
             height: int = 520) -> Figure:
    """Pairs (sample, nearest training image) with the memorisation ratio d1/d2 above each pair."""
    side = image_side(samples.shape[1])
    assert side is not None
    count = min(count, len(samples))
    nearest, ratio = memorisation(samples[:count], X)
    cols = 8
    rows = 2 * math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width / DPI, height / DPI), dpi=DPI)
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(count):
        r, c = 2 * (i // cols), i % cols
        axes[r, c].imshow(samples[i].reshape(side, side), cmap="gray_r")
        axes[r, c].set_title(f"ratio {ratio[i]:.2f}", fontsize=7, color="red" if ratio[i] < 1 / 3 else "black")
        axes[r + 1, c].imshow(X[nearest[i]].reshape(side, side), cmap="gray_r")
        axes[r + 1, c].set_title("nearest train", fontsize=7)
    memorised = float(np.mean(ratio < 1 / 3))
    title = f"samples (odd rows) and nearest training images; memorised (ratio < 1/3): {100 * memorised:.0f}%"
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.88, hspace=0.5, wspace=0.1)
    return _save(fig, "grid", title)


def editing_png(x: np.ndarray, U: np.ndarray, *, n_dirs: int = 4, amounts: Sequence[float] | None = None,
                edit: Callable[[np.ndarray, np.ndarray, int, Sequence[float]], np.ndarray] | None = None,
                width: int = 900, height: int = 480) -> Figure:
    """Rows: x moved along basis direction j of its component (x + t U[:, j]) for t in ``amounts``."""
    side = image_side(x.shape[0])
    assert side is not None
    scale = float(np.linalg.norm(x)) or 1.0
    amounts = list(amounts) if amounts is not None else [scale * t for t in (-0.6, -0.3, 0.0, 0.3, 0.6)]
    n_dirs = min(n_dirs, U.shape[1])
    fig, axes = plt.subplots(n_dirs, len(amounts), figsize=(width / DPI, height / DPI), dpi=DPI, squeeze=False)
    for j in range(n_dirs):
        row = edit(x, U, j, amounts) if edit else np.stack([x + t * U[:, j] for t in amounts])
        for c, t in enumerate(amounts):
            ax = axes[j, c]
            ax.imshow(row[c].reshape(side, side), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_title(f"t = {t:+.1f}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"U[:, {j}]", fontsize=8)
    title = "editing: a sample moved along the basis directions of its component"
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.02, top=0.88, hspace=0.2, wspace=0.05)
    return _save(fig, "editing", title)


def _render(jobs: Sequence[tuple[str, Callable[[], Figure]]]) -> list[Figure]:
    """Each figure that renders; one that fails is logged and left out (a plot must never fail the job)."""
    out: list[Figure] = []
    for kind, make in jobs:
        try:
            out.append(make())
        except Exception:
            log.exception("figure %s failed", kind)
    return out


def fit_figures(est: Any, X: np.ndarray, history: Sequence[float], method: str, *, seed: int = 0,
                n_samples: int = 200) -> list[Figure]:
    """The figures of a fit job; a figure that fails is logged and left out (never fails the job)."""
    import torch

    from molrg.analysis.jacobian import jacobian_rank_along_trajectory

    bases = [np.asarray(U.detach().cpu().double().numpy() if hasattr(U, "detach") else U) for U in est.bases_]
    dims = [int(U.shape[1]) for U in bases]
    jobs: list[tuple[str, Callable[[], Figure]]] = []
    if len(history):
        jobs.append(("loss", lambda: loss_png(history, method=method)))

    def projection() -> Figure:
        S = est.sample(n_samples, seed=seed).detach().cpu().double().numpy()
        return projection_png(X[:2000], S, bases)

    def jacobian() -> Figure:
        from molrg.lowrank.analytic import exact_denoiser

        den = exact_denoiser([torch.as_tensor(U, dtype=torch.float64) for U in bases], list(est.weights_))
        res = jacobian_rank_along_trajectory(den, X.shape[1], seed=seed, n_samples=2, steps=12)
        return jacobian_png(res, dims)

    jobs += [("projection", projection), ("jacobian", jacobian)]
    return _render(jobs)


def neural_fit_figures(denoiser: Any, X: np.ndarray, history: Sequence[float], bases: Sequence[np.ndarray],
                       method: str, *, seed: int = 0, n_samples: int = 200) -> list[Figure]:
    """The figures of a neural or empirical fit: ``loss`` (neural), ``projection`` onto the subspaces read
    from the network and ``jacobian`` (rank ratio of the network's Jacobian against sigma, section 9)."""
    import torch

    from molrg.analysis.jacobian import jacobian_rank_along_trajectory
    from molrg.sampling.samplers import sample

    device = getattr(denoiser, "device", None)
    dims = [int(U.shape[1]) for U in bases]
    jobs: list[tuple[str, Callable[[], Figure]]] = []
    if len(history):
        jobs.append(("loss", lambda: loss_png(history, method=method)))

    def projection() -> Figure:
        S = sample(denoiser, n_samples, X.shape[1], seed=seed, device=device)
        return projection_png(X[:2000], S.detach().cpu().double().numpy(), list(bases))

    def jacobian() -> Figure:
        with torch.enable_grad():
            res = jacobian_rank_along_trajectory(denoiser, X.shape[1], seed=seed, n_samples=2, steps=12)
        return jacobian_png(res, dims)

    jobs += [("projection", projection), ("jacobian", jacobian)]
    return _render(jobs)


def sample_figures(samples: np.ndarray, X: np.ndarray, bases: Sequence[np.ndarray]) -> list[Figure]:
    """The figures of a sample job on square images: the sample grid and the editing strip."""
    if image_side(samples.shape[1]) is None or len(samples) == 0 or len(X) < 2:
        return []
    out: list[Figure] = []
    try:
        out.append(grid_png(samples, X))
        from molrg.analysis.editing import edit_along_basis

        def edit(x: np.ndarray, U: np.ndarray, j: int, amounts: Sequence[float]) -> np.ndarray:
            import torch

            return edit_along_basis(torch.as_tensor(x), torch.as_tensor(U), j, list(amounts)).numpy()

        k = int(assign(samples[:1], bases)[0])
        out.append(editing_png(samples[0], np.asarray(bases[k]), edit=edit))
    except Exception:
        log.exception("sample figures failed")
    return out


def enabled() -> bool:
    """Figures are on unless ``MOLRG_PLOTS=0``."""
    import os

    return os.environ.get("MOLRG_PLOTS", "1").strip().lower() not in ("0", "false", "no", "off")


def rows(model: Any, job_id: Any, figs: Sequence[Figure]) -> list[Any]:
    """``db.models.Plot`` rows for ``figs``."""
    return [model(job_id=job_id, kind=f.kind, title=f.title[:200], width=f.width, height=f.height, png=f.png)
            for f in figs]
