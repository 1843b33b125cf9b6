"""Phase-transition estimates for sample-complexity sweeps (spec section 7).

From a success table (per intrinsic dimension ``d`` and sample size ``N`` or ``N_k``: number of
trials and successes) this module estimates the transition ``N*(d)`` two ways:

* the smallest grid ``N`` whose success rate is at least 0.5 (``None`` if never reached);
* a logistic fit ``P(success) = sigmoid((N - N50) / w)`` by maximum likelihood, returning the
  crossing point ``N50``. With a sharp step the unpenalised MLE has ``w -> 0``; the width is
  bounded below (``w >= 0.05 * grid spacing``) so the estimate stays finite and lands midway
  between the last failing and the first succeeding ``N``. An all-fail or all-success row has no
  crossing inside the grid: ``N50 = None`` and ``status`` says which side it is censored on.

and a least-squares line ``N* = slope * d + intercept`` with its ``R^2``.

Sample-scored methods (neural, empirical, exact; section 14) cross on their generalisation score
instead: ``n_star`` is the first grid value whose median score over trials is >= 0.5, and the
logistic is fitted to the generalised samples (score x eval samples per trial) out of all samples.
On a ``dim_ratio`` axis (N_k / d, a geometric grid) the logistic runs in log2 of the ratio and its
crossing is reported back as a ratio, and each (method, K, n) gets the collapse of its thresholds
across d (max / min: 1 when the curves of every d cross at the same N_k / d).
Pure numpy/scipy; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.optimize import minimize

__all__ = [
    "CellSummary",
    "Collapse",
    "LinearFit",
    "LogisticFit",
    "SweepReport",
    "TransitionRow",
    "TransitionSummary",
    "build_report",
    "first_crossing",
    "fit_line",
    "fit_logistic",
]


@dataclass(frozen=True)
class LogisticFit:
    """Logistic transition fit of one success row (spec section 7)."""

    n50: float | None
    width: float | None
    status: str  # "ok", "at_bound" (crossing pinned to the search range), "all_fail", "all_success", "empty"

    def to_dict(self) -> dict:
        """JSON-able dict (spec section 7)."""
        return asdict(self)


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line ``y = slope * x + intercept`` with R^2 (spec section 7)."""

    slope: float
    intercept: float
    r2: float | None
    n_points: int

    def to_dict(self) -> dict:
        """JSON-able dict (spec section 7)."""
        return asdict(self)


def first_crossing(
    samples: Sequence[int], rates: Sequence[float], level: float = 0.5
) -> int | None:
    """Smallest grid ``N`` with success rate ``>= level`` (spec section 7); ``None`` if never."""
    for s, r in sorted(zip(samples, rates, strict=True)):
        if r >= level:
            return int(s)
    return None


def _nll(params: np.ndarray, s: np.ndarray, k: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Binomial negative log-likelihood of ``sigmoid((s - n50)/w)`` and its gradient in (n50, log w)."""
    n50, logw = params
    w = math.exp(logw)
    z = (s - n50) / w
    # log sigmoid(z) = -log(1 + e^-z); log(1 - sigmoid(z)) = -log(1 + e^z), both overflow-safe.
    nll = float(np.sum(k * np.logaddexp(0.0, -z) + (t - k) * np.logaddexp(0.0, z)))
    p = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable sigmoid
    dz = t * p - k  # d nll / d z
    g_n50 = float(np.sum(dz * (-1.0 / w)))
    g_logw = float(np.sum(dz * (-z)))
    return nll, np.array([g_n50, g_logw])


def fit_logistic(
    samples: Sequence[float], successes: Sequence[float], trials: Sequence[float]
) -> LogisticFit:
    """Maximum-likelihood logistic fit of success against ``N`` (spec section 7).

    Parameters
    ----------
    samples : grid values of ``N`` (or ``N_k``, or log2 of a ratio), one per cell of the row.
    successes, trials : counts per cell (successes may be fractional: generalised samples).

    Returns
    -------
    LogisticFit with the crossing ``n50`` (``None`` when all cells fail or all succeed).
    """
    s = np.asarray(samples, dtype=np.float64)
    k = np.asarray(successes, dtype=np.float64)
    t = np.asarray(trials, dtype=np.float64)
    keep = t > 0
    s, k, t = s[keep], k[keep], t[keep]
    if s.size == 0:
        return LogisticFit(None, None, "empty")
    if k.sum() == 0:
        return LogisticFit(None, None, "all_fail")
    if k.sum() == t.sum():
        return LogisticFit(None, None, "all_success")
    uniq = np.unique(s)
    spacing = float(np.min(np.diff(uniq))) if uniq.size > 1 else 1.0
    span = float(uniq[-1] - uniq[0]) if uniq.size > 1 else 1.0
    lo_w, hi_w = 0.05 * spacing, max(span, spacing)
    bounds = [(float(uniq[0]) - spacing, float(uniq[-1]) + spacing), (math.log(lo_w), math.log(hi_w))]
    rate = k / t
    above = s[rate >= 0.5]
    start_n50 = float(above.min()) - 0.5 * spacing if above.size else float(uniq[-1])
    best = None
    # A few starting widths: the NLL is convex in n50 for fixed w but not jointly.
    for w0 in (lo_w * 4.0, spacing, 0.5 * hi_w):
        x0 = np.array([start_n50, math.log(min(max(w0, lo_w), hi_w))])
        res = minimize(_nll, x0, args=(s, k, t), jac=True, method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    n50, logw = (float(v) for v in best.x)
    lo, hi = bounds[0]
    # A crossing (or a width) pinned to the search bound means the row is not a step up inside the grid
    # (e.g. non-monotone success): report it, but flag it so tables do not read it as N50.
    pinned = min(n50 - lo, hi - n50) < 1e-6 * max(1.0, spacing) or logw > math.log(hi_w) - 1e-6
    status = "at_bound" if pinned else "ok"
    return LogisticFit(n50, math.exp(logw), status)


def fit_line(x: Sequence[float], y: Sequence[float | None]) -> LinearFit | None:
    """Least-squares line of ``y`` on ``x`` ignoring ``None`` (spec section 7); ``None`` if < 2 points."""
    pts = [(float(a), float(b)) for a, b in zip(x, y, strict=True) if b is not None]
    if len({a for a, _ in pts}) < 2:
        return None
    xs = np.array([a for a, _ in pts])
    ys = np.array([b for _, b in pts])
    slope, intercept = np.polyfit(xs, ys, 1)
    pred = slope * xs + intercept
    ss_res = float(np.sum((ys - pred) ** 2))
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    # R^2 is undefined when y is constant; report None rather than a fake 0 or 1.
    r2 = None if ss_tot == 0.0 else 1.0 - ss_res / ss_tot
    return LinearFit(float(slope), float(intercept), r2, len(pts))


class TrialLike(Protocol):
    """The fields of ``molrg.sweeps.run.TrialResult`` that a report reads (read-only, so frozen dataclasses match)."""

    @property
    def ambient_dim(self) -> int: ...
    @property
    def n_components(self) -> int: ...
    @property
    def d(self) -> int: ...
    @property
    def samples(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def error(self) -> float: ...
    @property
    def success(self) -> bool: ...
    @property
    def fit_seconds(self) -> float: ...


@dataclass(frozen=True)
class CellSummary:
    """Success and error statistics of one (cell, method) (spec section 7)."""

    method: str
    ambient_dim: int
    n_components: int
    d: int
    samples: int
    trials: int
    successes: int
    success_rate: float
    error_mean: float
    error_median: float
    error_p90: float
    fit_seconds_mean: float
    # sample-scored methods: medians over trials (section 13); None for the low-rank methods
    memorised_fraction: float | None = None
    generalisation_score: float | None = None
    on_support_fraction: float | None = None
    by_step: dict[str, dict[str, float]] | None = None  # neural with eval_at_steps: step -> median scores


@dataclass(frozen=True)
class TransitionRow:
    """Transition estimates for one d (spec section 7)."""

    d: int
    n_star: int | None
    logistic: LogisticFit


@dataclass(frozen=True)
class Collapse:
    """How far the thresholds of the d's of one (method, K, n) lie apart on an N_k / d axis (section 14)."""

    n_star_max_over_min: float | None  # None: fewer than 2 d's crossed inside the grid
    logistic_max_over_min: float | None
    crossed: int  # d's whose curve crossed inside the grid
    rows: int

    def to_dict(self) -> dict:
        """JSON-able dict (spec section 14)."""
        return asdict(self)


def _max_over_min(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and v > 0]
    return max(vals) / min(vals) if len(vals) >= 2 else None


@dataclass(frozen=True)
class TransitionSummary:
    """N*(d) per d and the lines N* ~ d for one (method, K, n) (spec section 7)."""

    method: str
    n_components: int
    ambient_dim: int
    rows: list[TransitionRow]
    linear_fit: LinearFit | None  # N* (smallest grid N with success >= 0.5) against d
    linear_fit_logistic: LinearFit | None  # logistic N50 against d
    collapse: Collapse | None = None  # dim_ratio sweeps: spread of the thresholds across d


@dataclass(frozen=True)
class SweepReport:
    """Summary of a sweep: per-cell statistics and transitions (spec section 7); JSON via to_dict."""

    grid: dict[str, Any]
    cells: list[CellSummary]
    transitions: list[TransitionSummary]
    n_trials: int
    total_fit_seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; :meth:`from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepReport:
        """Inverse of :meth:`to_dict`."""

        def line(v: dict | None) -> LinearFit | None:
            return None if v is None else LinearFit(**v)

        transitions = [
            TransitionSummary(
                method=t["method"], n_components=t["n_components"], ambient_dim=t["ambient_dim"],
                rows=[TransitionRow(r["d"], r["n_star"], LogisticFit(**r["logistic"])) for r in t["rows"]],
                linear_fit=line(t["linear_fit"]), linear_fit_logistic=line(t["linear_fit_logistic"]),
                collapse=Collapse(**t["collapse"]) if t.get("collapse") else None,
            )
            for t in data["transitions"]
        ]
        return cls(
            grid=dict(data["grid"]), cells=[CellSummary(**c) for c in data["cells"]],
            transitions=transitions, n_trials=int(data["n_trials"]),
            total_fit_seconds=float(data["total_fit_seconds"]), meta=dict(data.get("meta", {})),
        )

    def cell(self, method: str, n_components: int, ambient_dim: int, d: int, samples: int) -> CellSummary | None:
        """The summary of one (cell, method), or None if it was not run."""
        for c in self.cells:
            if (c.method, c.n_components, c.ambient_dim, c.d, c.samples) == (
                method, n_components, ambient_dim, d, samples
            ):
                return c
        return None

    def transition(self, method: str, n_components: int, ambient_dim: int) -> TransitionSummary | None:
        """The transition summary of one (method, K, n), or None."""
        for t in self.transitions:
            if (t.method, t.n_components, t.ambient_dim) == (method, n_components, ambient_dim):
                return t
        return None


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def _by_step(group: Sequence[TrialLike]) -> dict[str, dict[str, float]] | None:
    """Median over trials of each score at each recorded training step (section 14)."""
    rows = [r for g in group if (r := getattr(g, "scores_by_step", None))]
    if not rows:
        return None
    steps = sorted({s for r in rows for s in r}, key=int)
    return {s: {name: float(np.median([r[s][name] for r in rows if s in r])) for name in rows[0][steps[0]]}
            for s in steps}


def _scored_row(row: list[CellSummary], groups: dict[tuple[str, int, int, int, int], list[TrialLike]],
                key: tuple[str, int, int, int], M: int, log_axis: bool) -> tuple[int | None, LogisticFit]:
    """First grid value with median generalisation >= 0.5, and the logistic of the generalised samples."""
    ns = [c.samples for c in row]
    n_star = first_crossing(ns, [c.generalisation_score or 0.0 for c in row])
    k = [sum(M * float(getattr(g, "generalisation_score", 0.0) or 0.0) for g in groups[(*key, c.samples)])
         for c in row]
    t = [M * c.trials for c in row]
    return n_star, _logistic(ns, k, t, log_axis)


def _logistic(ns: Sequence[int], k: Sequence[float], t: Sequence[float], log_axis: bool) -> LogisticFit:
    if not log_axis:
        return fit_logistic(ns, k, t)
    fit = fit_logistic([math.log2(v) for v in ns], k, t)
    return LogisticFit(None if fit.n50 is None else 2.0 ** fit.n50, fit.width, fit.status)


def build_report(grid: dict[str, Any], trials: Sequence[TrialLike]) -> SweepReport:
    """Aggregate de-duplicated trials into a :class:`SweepReport` (spec sections 7, 14).

    Parameters
    ----------
    grid : the sweep grid as a dict (stored in the report).
    trials : one record per (cell, trial, method), already de-duplicated.
    """
    groups: dict[tuple[str, int, int, int, int], list[TrialLike]] = {}
    for tr in trials:
        key = (tr.method, int(tr.n_components), int(tr.ambient_dim), int(tr.d), int(tr.samples))
        groups.setdefault(key, []).append(tr)
    cells = []
    for (method, K, n, d, s), group in sorted(groups.items()):
        err = np.array([g.error for g in group], dtype=np.float64)
        succ = int(sum(bool(g.success) for g in group))
        cells.append(CellSummary(
            method=method, ambient_dim=n, n_components=K, d=d, samples=s, trials=len(group),
            successes=succ, success_rate=succ / len(group), error_mean=float(err.mean()),
            error_median=float(np.median(err)), error_p90=float(np.quantile(err, 0.9)),
            fit_seconds_mean=float(np.mean([g.fit_seconds for g in group])),
            memorised_fraction=_median([getattr(g, "memorised_fraction", None) for g in group]),
            generalisation_score=_median([getattr(g, "generalisation_score", None) for g in group]),
            on_support_fraction=_median([getattr(g, "on_support_fraction", None) for g in group]),
            by_step=_by_step(group),
        ))
    ratio_axis = grid.get("samples_per") == "dim_ratio"
    M = int(grid.get("eval_samples", 256))
    by_line: dict[tuple[str, int, int], dict[int, list[CellSummary]]] = {}
    for c in cells:
        by_line.setdefault((c.method, c.n_components, c.ambient_dim), {}).setdefault(c.d, []).append(c)
    transitions = []
    for (method, K, n), per_d in sorted(by_line.items()):
        rows = []
        for d, row in sorted(per_d.items()):
            row = sorted(row, key=lambda c: c.samples)
            ns = [c.samples for c in row]
            if row[0].generalisation_score is not None:
                n_star, logistic = _scored_row(row, groups, (method, K, n, d), M, ratio_axis)
            else:
                n_star = first_crossing(ns, [c.success_rate for c in row])
                logistic = _logistic(ns, [c.successes for c in row], [c.trials for c in row], ratio_axis)
            rows.append(TransitionRow(d, n_star, logistic))
        ds = [r.d for r in rows]
        n50s = [r.logistic.n50 if r.logistic.status == "ok" else None for r in rows]
        collapse = Collapse(_max_over_min([r.n_star for r in rows]), _max_over_min(n50s),
                            sum(r.n_star is not None for r in rows), len(rows)) if ratio_axis else None
        transitions.append(TransitionSummary(
            method=method, n_components=K, ambient_dim=n, rows=rows,
            linear_fit=fit_line(ds, [r.n_star for r in rows]),
            linear_fit_logistic=fit_line(ds, n50s), collapse=collapse,
        ))
    return SweepReport(
        grid=dict(grid), cells=cells, transitions=transitions, n_trials=len(trials),
        total_fit_seconds=float(sum(t.fit_seconds for t in trials)),
    )
