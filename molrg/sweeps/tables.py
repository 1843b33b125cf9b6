"""Text tables of a sweep report (spec sections 7, 14): success % and N*(d) for the low-rank methods,
median scores with the threshold ratio per d and the collapse for the sample-scored ones."""

from __future__ import annotations

from molrg.sweeps.transition import SweepReport

__all__ = ["format_scores", "format_table"]


def format_table(report: SweepReport, method: str, n_components: int, ambient_dim: int) -> str:
    """Text table of success % (rows d, columns N or N_k) plus N*(d) and N50 (spec section 7)."""
    sel = [c for c in report.cells
           if (c.method, c.n_components, c.ambient_dim) == (method, n_components, ambient_dim)]
    if not sel:
        return f"(no results for method={method}, K={n_components}, n={ambient_dim})"
    per = report.grid.get("samples_per", "component")
    label = "N_k" if per == "component" and n_components > 1 else "N"
    ds = sorted({c.d for c in sel})
    ns = sorted({c.samples for c in sel})
    rate = {(c.d, c.samples): c.success_rate for c in sel}
    tr = report.transition(method, n_components, ambient_dim)
    star = {r.d: r for r in tr.rows} if tr else {}
    head = f"{'d ' + chr(92) + ' ' + label:>7} |" + "".join(f"{s:>5}" for s in ns) + " |   N*    N50"
    lines = [f"{method}  K={n_components}  n={ambient_dim}  (success %)", head, "-" * len(head)]
    for d in ds:
        cells = "".join(f"{round(100 * rate[(d, s)]):>5}" if (d, s) in rate else "    ." for s in ns)
        r = star.get(d)
        n_star = "-" if r is None or r.n_star is None else str(r.n_star)
        n50 = "-" if r is None or r.logistic.n50 is None else f"{r.logistic.n50:.2f}"
        n50 += "*" if r is not None and r.logistic.status == "at_bound" else ""
        lines.append(f"{d:>7} |{cells} | {n_star:>4} {n50:>6}")
    if tr is not None and tr.linear_fit is not None:
        lf = tr.linear_fit
        r2 = "n/a" if lf.r2 is None else f"{lf.r2:.3f}"
        sign = "-" if lf.intercept < 0 else "+"
        lines.append(f"N* = {lf.slope:.3f} d {sign} {abs(lf.intercept):.3f}   (R^2 = {r2}, {lf.n_points} points)")
    else:
        lines.append("N* ~ d: fewer than 2 finite N* values, no line")
    return "\n".join(lines)


def format_scores(report: SweepReport, method: str, n_components: int, ambient_dim: int,
                  value: str = "generalisation_score") -> str:
    """Text table of a median score (rows d, columns N_k / d) with the threshold ratio per d and the collapse."""
    sel = [c for c in report.cells if (c.method, c.n_components, c.ambient_dim) == (method, n_components, ambient_dim)]
    ds, ns = sorted({c.d for c in sel}), sorted({c.samples for c in sel})
    at = {(c.d, c.samples): getattr(c, value) for c in sel}
    tr = report.transition(method, n_components, ambient_dim)
    rows = {r.d: r for r in tr.rows} if tr else {}
    head = f"{'d ' + chr(92) + ' N_k/d':>9} |" + "".join(f"{s:>6}" for s in ns) + " |  first  logistic"
    lines = [f"{method}  K={n_components}  n={ambient_dim}  ({value}, median over trials)", head, "-" * len(head)]
    for d in ds:
        vals = "".join("     ." if at.get((d, s)) is None else f"{at[(d, s)]:>6.2f}" for s in ns)
        r = rows.get(d)
        first = "-" if r is None or r.n_star is None else str(r.n_star)
        n50 = "-" if r is None or r.logistic.n50 is None else f"{r.logistic.n50:.2f}"
        n50 += "*" if r is not None and r.logistic.status == "at_bound" else ""
        lines.append(f"{d:>9} |{vals} | {first:>6} {n50:>9}")
    if tr is not None and tr.collapse is not None:
        c = tr.collapse
        lines.append(f"collapse across d: first-crossing max/min {c.n_star_max_over_min}, logistic max/min "
                     f"{c.logistic_max_over_min} ({c.crossed} of {c.rows} d crossed inside the grid)")
    return "\n".join(lines)
