"""Sweep figures, rendered with matplotlib's Agg backend from the report's plain dicts (no torch).

* :func:`heatmap_png`, the paper's phase-transition figure: success rate (for the sample-scored methods
  the generalisation score) over intrinsic dimension ``d`` (rows) and samples ``N``, ``N_k`` or
  ``N_k / d`` (columns), with the low-rank threshold ``N = d`` (``N_k / d = 1``) drawn over it.
* :func:`curves_png` (spec section 14): generalisation score and memorised fraction against ``N_k / d``
  on a log axis, one curve per ``d`` for the network, the empirical and exact references and the
  low-rank threshold marked.
"""

import io
from collections.abc import Iterable, Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot (workers have no GUI)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_WIDTH = 800
DEFAULT_HEIGHT = 600
DPI = 100


def heatmap_png(
    cells: Iterable[Mapping[str, Any]],
    *,
    method: str,
    n_components: int,
    ambient_dim: int,
    samples_per: str = "component",
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
) -> bytes:
    """PNG bytes (exactly ``width`` x ``height`` pixels) of the success-rate heatmap of one (method, K, n).

    ``cells`` are report cells (``method``, ``n_components``, ``ambient_dim``, ``d``, ``samples``,
    ``success_rate``, ``trials``); cells of other groups are ignored, missing ones are left blank.
    """
    sel = [c for c in cells if (c["method"], int(c["n_components"]), int(c["ambient_dim"]))
           == (method, n_components, ambient_dim)]
    if not sel:
        raise ValueError(f"no cells for method={method!r}, n_components={n_components}, ambient_dim={ambient_dim}")
    ds = sorted({int(c["d"]) for c in sel})
    ns = sorted({int(c["samples"]) for c in sel})
    rate = np.full((len(ds), len(ns)), np.nan)
    trials = max(int(c.get("trials", 0)) for c in sel)
    scored = sel[0].get("generalisation_score") is not None
    colour = "generalisation score (median)" if scored else "success rate"
    for c in sel:
        value = c["generalisation_score"] if scored else c["success_rate"]
        rate[ds.index(int(c["d"])), ns.index(int(c["samples"]))] = np.nan if value is None else float(value)

    ratio = samples_per == "dim_ratio"
    per_component = samples_per == "component" and n_components > 1
    xlabel = "N_k / d, samples per component over d" if ratio else \
        "N_k, samples per component" if per_component else "N, number of samples"
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    try:
        ax = fig.add_axes((0.1, 0.11, 0.72, 0.8))
        cax = fig.add_axes((0.85, 0.11, 0.03, 0.8))
        # Cell (i, j) is centred on (N_j, d_i) by index; non-uniform grids keep equal-width cells.
        image = ax.imshow(rate, origin="lower", aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0,
                          interpolation="nearest", extent=(-0.5, len(ns) - 0.5, -0.5, len(ds) - 0.5))
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_yticks(range(len(ds)), [str(d) for d in ds])
        # The line N = d in data units, mapped onto index coordinates by linear interpolation.
        lo, hi = max(min(ns), min(ds)), min(max(ns), max(ds))
        if ratio:
            if min(ns) <= 1 <= max(ns):
                ax.axvline(float(np.interp(1.0, ns, range(len(ns)))), color="red", linestyle="--", linewidth=2,
                           label="N_k = d (low-rank threshold)")
                ax.legend(loc="upper left")
        elif lo <= hi:
            line = np.linspace(lo, hi, 50)
            ax.plot(np.interp(line, ns, range(len(ns))), np.interp(line, ds, range(len(ds))),
                    color="red", linestyle="--", linewidth=2, label="N_k = d" if per_component else "N = d")
            ax.legend(loc="upper left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("d, intrinsic dimension")
        ax.set_title(f"{colour.split(' (')[0]}: {method}, K={n_components}, n={ambient_dim}, {trials} trials per cell")
        bar = fig.colorbar(image, cax=cax)
        bar.set_label(colour)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()
    finally:
        plt.close(fig)


_REFERENCES = {"empirical": ("empirical denoiser", "0.45", "--"), "exact": ("exact posterior", "black", ":")}


def _series(sel: list[Mapping[str, Any]], d: int, key: str) -> tuple[list[float], list[float]]:
    pts = sorted((float(c["samples"]), c.get(key)) for c in sel if int(c["d"]) == d)
    return [x for x, y in pts if y is not None], [float(y) for _, y in pts if y is not None]


def curves_png(
    cells: Iterable[Mapping[str, Any]],
    transitions: Iterable[Mapping[str, Any]] = (),
    *,
    n_components: int,
    ambient_dim: int,
    samples_per: str = "dim_ratio",
    width: int = 1200,
    height: int = 520,
) -> bytes:
    """PNG of generalisation score and memorised fraction against N_k / d (log axis), one curve per d (section 14).

    The network (``neural``) is drawn in colour per d, the references (``empirical``, ``exact``) in grey
    per d, and a low-rank method's success rate (``diffusion`` etc.) thin per d in the left panel; the
    low-rank threshold ``N_k / d = 1`` is the red line, each d's threshold ratio (first median score >= 0.5)
    a marker on the 0.5 level.
    """
    sel = [c for c in cells if (int(c["n_components"]), int(c["ambient_dim"])) == (n_components, ambient_dim)]
    if not sel:
        raise ValueError(f"no cells for n_components={n_components}, ambient_dim={ambient_dim}")
    methods = sorted({str(c["method"]) for c in sel})
    ds = sorted({int(c["d"]) for c in sel})
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(ds), 1)))
    ratio = samples_per == "dim_ratio"
    stars = {(t["method"], int(r["d"])): r.get("n_star") for t in transitions
             if (int(t["n_components"]), int(t["ambient_dim"])) == (n_components, ambient_dim) for r in t["rows"]}
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    try:
        axes = [fig.add_axes((0.06, 0.12, 0.36, 0.76)), fig.add_axes((0.5, 0.12, 0.36, 0.76))]
        for ax, key, label in ((axes[0], "generalisation_score", "generalisation score"),
                               (axes[1], "memorised_fraction", "memorised fraction")):
            for method in methods:
                msel = [c for c in sel if c["method"] == method]
                scored = msel[0].get("generalisation_score") is not None
                for i, d in enumerate(ds):
                    if scored:
                        xs, ys = _series(msel, d, key)
                    elif key == "generalisation_score":
                        xs, ys = _series(msel, d, "success_rate")
                    else:
                        continue
                    if not xs:
                        continue
                    first = i == 0
                    if method == "neural":
                        ax.plot(xs, ys, "o-", color=colours[i], linewidth=2, label=f"neural, d={d}")
                        star = stars.get((method, d))
                        if key == "generalisation_score" and star is not None:
                            ax.plot([star], [0.5], marker="v", color=colours[i], markersize=11, linestyle="none")
                    elif method in _REFERENCES:
                        name, colour, style = _REFERENCES[method]
                        ax.plot(xs, ys, linestyle=style, color=colour, linewidth=1.2, label=name if first else None)
                    else:
                        ax.plot(xs, ys, linestyle="-.", color="tab:green", linewidth=1.0, alpha=0.7,
                                label=f"{method} (low-rank) success rate" if first else None)
            if ratio:
                ax.axvline(1.0, color="red", linestyle="--", linewidth=1.5, label="N_k = d (low-rank threshold)")
            ax.axhline(0.5, color="0.8", linewidth=0.8, zorder=0)
            ax.set_xscale("log", base=2)
            grid_x = sorted({float(c["samples"]) for c in sel})
            ax.set_xticks(grid_x, [f"{x:g}" for x in grid_x])
            ax.minorticks_off()
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel("N_k / d" if ratio else "N_k, samples per component")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3, which="both")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
        trials = max(int(c.get("trials", 0)) for c in sel)
        fig.suptitle(f"memorisation to generalisation, K={n_components}, n={ambient_dim}, {trials} trials per cell "
                     "(medians; triangles: threshold ratio per d)")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()
    finally:
        plt.close(fig)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError if ``data`` is not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
