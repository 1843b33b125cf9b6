"""Readable text for the ``show`` commands: every number of a resource, as aligned tables.

Generic over the JSON (so fields added later, e.g. a neural fit's metrics, show without code here):
nested objects become dotted keys (``fitted.residual.median``), objects whose members are parallel objects
(a sample set's ``fitted`` and ``true`` diagnostics) become one table with a column each, lists of numbers
print inline, and lists of objects (a sweep's cells, transitions, chunks) print as column tables. A sweep
also gets its success rates as a d x N grid per (method, K, n).
"""

from __future__ import annotations

import math
from typing import Any

INDENT = "  "


def fmt(value: Any) -> str:
    """4 significant digits for floats, ``-`` for null, lists inline."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def flatten(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``[("a.b", 1), ("c", [1, 2])]`` (lists of objects left whole)."""
    out: list[tuple[str, Any]] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def kv(rows: list[tuple[str, Any]], indent: str = INDENT) -> list[str]:
    if not rows:
        return []
    width = max(len(k) for k, _ in rows)
    return [f"{indent}{k:<{width}}  {fmt(v)}" for k, v in rows]


def grid(rows: list[dict[str, Any]], columns: list[str] | None = None, indent: str = INDENT) -> list[str]:
    """A column table of ``rows`` (nested members flattened into dotted columns)."""
    flat = [dict(flatten(r)) for r in rows]
    if columns is None:
        columns = []
        for r in flat:
            columns.extend(k for k in r if k not in columns)
    cells = [[fmt(r.get(c)) for c in columns] for r in flat]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    def line(values: list[str]) -> str:  # the first column (row labels) left, the others right-aligned
        parts = [v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return (indent + "  ".join(parts)).rstrip()

    return [line(columns)] + [line(row) for row in cells]


def _parallel(obj: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Members that are objects with mostly the same keys (``fitted``/``true``): one table, a column each.

    Returns (the names of those members, the table lines); ([], []) when there are none. Keys only some of
    them have show ``-`` in the others' columns.
    """
    subs = {k: dict(flatten(v)) for k, v in obj.items() if isinstance(v, dict) and v}

    def close(a: str, b: str) -> bool:
        ka, kb = set(subs[a]), set(subs[b])
        return len(ka & kb) >= 0.5 * len(ka | kb)

    names = max(([n for n in subs if close(first, n)] for first in subs), key=len, default=[])
    if len(names) < 2:
        return [], []
    keys: list[str] = []
    for name in names:
        keys.extend(k for k in subs[name] if k not in keys)
    table = [{"": k, **{name: subs[name].get(k) for name in names}} for k in keys]
    return names, grid(table, ["", *names])


def section(title: str, obj: dict[str, Any]) -> list[str]:
    """A titled block: scalars and dotted keys, then parallel objects and lists of objects as tables."""
    scalars = {k: v for k, v in obj.items() if not _is_rows(v)}
    names, parallel = _parallel(scalars)
    lines = [title] + kv(flatten({k: v for k, v in scalars.items() if k not in names})) + parallel
    for key, value in obj.items():
        if _is_rows(value):
            lines.append(f"{INDENT}{key}:")
            lines += grid(value, indent=INDENT * 2)
    return lines


def _links(obj: dict[str, Any]) -> list[str]:
    links = {k: v for k, v in (obj.get("links") or {}).items() if k != "self"}
    return section("links", links) if links else []


def _without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def show_dataset(d: dict[str, Any]) -> str:
    lines = section(f"dataset {d['id']}", _without(d, "id", "spec", "links"))
    if d.get("spec"):
        lines += section("spec", d["spec"])
    return "\n".join(lines + _links(d))


def show_job(job: dict[str, Any]) -> str:
    from molrg_client.progress import describe_detail

    head = _without(job, "id", "params", "result", "links", "progress_detail")
    if job.get("progress_detail"):
        head["progress_detail"] = describe_detail(job["progress_detail"])
    lines = section(f"job {job['id']}", head)
    if job.get("params"):
        lines += section("params", job["params"])
    if job.get("result"):
        lines += section("result", job["result"])
    return "\n".join(lines + _links(job))


def show_model(m: dict[str, Any]) -> str:
    lines = section(f"model {m['id']}", _without(m, "id", "metrics", "config", "links"))
    if m.get("metrics"):
        lines += section("metrics", m["metrics"])
    if m.get("config"):
        lines += section("config", m["config"])
    return "\n".join(lines + _links(m))


def show_sample_set(s: dict[str, Any]) -> str:
    lines = section(f"sample set {s['id']}", _without(s, "id", "diagnostics", "links"))
    if s.get("diagnostics"):
        lines += section("diagnostics", s["diagnostics"])
    return "\n".join(lines + _links(s))


def success_grids(cells: list[dict[str, Any]], value: str = "success_rate") -> list[str]:
    """Per (method, K, n): rows d, columns N (or N_k), entries ``value``."""
    lines: list[str] = []
    groups: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["method"], c["n_components"], c["ambient_dim"]), []).append(c)
    for (method, K, n), group in groups.items():
        ds = sorted({c["d"] for c in group})
        ns = sorted({c["samples"] for c in group})
        at = {(c["d"], c["samples"]): c.get(value) for c in group}
        lines.append(f"{INDENT}{value}: method={method} K={K} n={n} (rows d, columns N)")
        table = [{"d": d, **{str(N): at.get((d, N)) for N in ns}} for d in ds]
        lines += grid(table, ["d", *map(str, ns)], indent=INDENT * 2)
    return lines


def show_sweep(s: dict[str, Any]) -> str:
    head = _without(s, "id", "spec", "cells", "transitions", "heatmaps", "figures", "chunks", "links")
    lines = section(f"sweep {s['id']}", head)
    lines += section("spec", s.get("spec") or {})
    for t in s.get("transitions") or []:
        lines.append(f"transition: method={t['method']} K={t['n_components']} n={t['ambient_dim']}")
        for name in ("linear_fit", "linear_fit_logistic"):
            f = t.get(name)
            if f:
                sign = "-" if f["intercept"] < 0 else "+"
                lines.append(f"{INDENT}{name}: N* = {fmt(f['slope'])} d {sign} {fmt(abs(f['intercept']))}"
                             f"  (r2 {fmt(f.get('r2'))}, {f.get('n_points')} points)")
        if t.get("collapse"):
            c = t["collapse"]
            lines.append(f"{INDENT}collapse across d: n_star max/min {fmt(c.get('n_star_max_over_min'))}, "
                         f"logistic max/min {fmt(c.get('logistic_max_over_min'))} ({c.get('crossed')} of "
                         f"{c.get('rows')} d crossed)")
        if t.get("rows"):
            lines += grid(t["rows"])
    if s.get("cells"):
        lines.append("cells")
        lines += success_grids(s["cells"], "success_rate")
        lines += success_grids(s["cells"], "error_median")
        scored = [c for c in s["cells"] if c.get("generalisation_score") is not None]
        for value in ("generalisation_score", "memorised_fraction", "on_support_fraction"):
            lines += success_grids(scored, value)
        steps = sorted({st for c in scored for st in (c.get("by_step") or {})}, key=int)
        for st in steps:  # the same scores after earlier training steps (eval_at_steps)
            for value in ("generalisation_score", "memorised_fraction"):
                at_step = [{**c, f"{value}@{st}": ((c.get("by_step") or {}).get(st) or {}).get(value)}
                           for c in scored if c.get("by_step")]
                lines += success_grids(at_step, f"{value}@{st}")
    if s.get("chunks"):
        lines.append("chunks")
        rows = [{**c, "step": f"{p['step']}/{p['total_steps']}" if (p := c.get("progress") or {}).get("step")
                 else None} for c in s["chunks"]]
        lines += grid(rows, ["index", "status", "attempts", "n_fits", "step", "worker", "error"])
    if s.get("heatmaps"):
        lines.append("heatmaps")
        lines += grid(s["heatmaps"])
    if s.get("figures"):
        lines.append("figures")
        lines += grid(s["figures"])
    return "\n".join(lines + _links(s))
