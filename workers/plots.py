"""The sweep heatmap (the paper's phase-transition figure), rendered with matplotlib's Agg backend.

Success rate over intrinsic dimension ``d`` (rows) and samples ``N`` or ``N_k`` (columns), with the
line ``N = d`` drawn over it. Input is the report's plain cell dicts, so rendering needs no torch.
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
    for c in sel:
        rate[ds.index(int(c["d"])), ns.index(int(c["samples"]))] = float(c["success_rate"])

    per_component = samples_per == "component" and n_components > 1
    xlabel = "N_k, samples per component" if per_component else "N, number of samples"
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
        if lo <= hi:
            line = np.linspace(lo, hi, 50)
            ax.plot(np.interp(line, ns, range(len(ns))), np.interp(line, ds, range(len(ds))),
                    color="red", linestyle="--", linewidth=2, label="N_k = d" if per_component else "N = d")
            ax.legend(loc="upper left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("d, intrinsic dimension")
        ax.set_title(f"success rate: {method}, K={n_components}, n={ambient_dim}, {trials} trials per cell")
        bar = fig.colorbar(image, cax=cax)
        bar.set_label("success rate")
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
