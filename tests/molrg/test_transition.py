"""Transition estimates on synthetic success tables (spec section 7)."""

import json
import math
from types import SimpleNamespace

import pytest

from molrg.sweeps.tables import format_table
from molrg.sweeps.transition import (
    SweepReport,
    build_report,
    first_crossing,
    fit_line,
    fit_logistic,
)

SAMPLES = list(range(2, 16))
DIMS = list(range(2, 9))
T = 20


def _step_trials(step_at=lambda d: d, trials=T):
    """Records of a sharp step: success iff N >= step_at(d)."""
    out = []
    for d in DIMS:
        for s in SAMPLES:
            for t in range(trials):
                ok = s >= step_at(d)
                out.append(SimpleNamespace(
                    ambient_dim=48, n_components=1, d=d, samples=s, method="pca", trial=t,
                    error=0.01 if ok else 1.5, success=ok, fit_seconds=0.001,
                ))
    return out


def test_first_crossing():
    assert first_crossing([2, 3, 4, 5], [0.0, 0.4, 0.5, 1.0]) == 4
    assert first_crossing([5, 2, 3], [1.0, 0.0, 0.9]) == 3  # unsorted input
    assert first_crossing([2, 3], [0.0, 0.2]) is None


def test_logistic_sharp_step_lands_between_last_fail_and_first_success():
    for d in (3, 5, 8):
        fit = fit_logistic(SAMPLES, [T if s >= d else 0 for s in SAMPLES], [T] * len(SAMPLES))
        assert fit.status == "ok"
        assert fit.n50 == pytest.approx(d - 0.5, abs=0.05)
        assert fit.width is not None and math.isfinite(fit.width)


def test_logistic_recovers_smooth_curve():
    n50, w = 7.3, 1.2
    trials = [2000] * len(SAMPLES)
    succ = [round(2000 / (1 + math.exp(-(s - n50) / w))) for s in SAMPLES]
    fit = fit_logistic(SAMPLES, succ, trials)
    assert fit.n50 == pytest.approx(n50, abs=0.05)
    assert fit.width == pytest.approx(w, rel=0.05)


def test_logistic_censored_rows():
    assert fit_logistic(SAMPLES, [0] * 14, [T] * 14).status == "all_fail"
    all_ok = fit_logistic(SAMPLES, [T] * 14, [T] * 14)
    assert all_ok.status == "all_success" and all_ok.n50 is None
    assert fit_logistic([], [], []).status == "empty"


def test_fit_line():
    lf = fit_line([2, 3, 4, 5], [4, 6, 8, 10])
    assert (lf.slope, lf.intercept, lf.r2) == pytest.approx((2.0, 0.0, 1.0))
    assert fit_line([2, 3], [None, 4]) is None
    assert fit_line([2, 3, 4], [5, 5, 5]).r2 is None  # constant y: R^2 undefined


def test_report_on_step_at_d():
    report = build_report({"samples_per": "total"}, _step_trials())
    tr = report.transition("pca", 1, 48)
    assert [r.n_star for r in tr.rows] == DIMS
    assert tr.linear_fit.slope == pytest.approx(1.0)
    assert tr.linear_fit.intercept == pytest.approx(0.0, abs=1e-9)
    assert tr.linear_fit.r2 == pytest.approx(1.0)
    # d = 2 is all-success on a grid starting at N = 2 (censored); the others sit at d - 1/2.
    assert tr.rows[0].logistic.n50 is None
    for r in tr.rows[1:]:
        assert r.logistic.n50 == pytest.approx(r.d - 0.5, abs=0.05)
    c = report.cell("pca", 1, 48, 4, 3)
    assert (c.trials, c.successes, c.success_rate) == (T, 0, 0.0)
    assert report.cell("pca", 1, 48, 4, 4).success_rate == 1.0


def test_report_step_at_d_plus_one():
    tr = build_report({}, _step_trials(lambda d: d + 1)).transitions[0]
    assert (tr.linear_fit.slope, tr.linear_fit.intercept) == pytest.approx((1.0, 1.0))


def test_report_json_round_trip_and_table():
    report = build_report({"samples_per": "total"}, _step_trials())
    text = json.dumps(report.to_dict())
    back = SweepReport.from_dict(json.loads(text))
    assert back == report
    table = format_table(report, "pca", 1, 48)
    lines = table.splitlines()
    assert len(lines) == 3 + len(DIMS) + 1
    assert lines[3 + 2].split("|")[1].split() == ["0", "0", "100"] + ["100"] * 11  # d = 4
    assert "R^2 = 1.000" in lines[-1]
    assert "no results" in format_table(report, "diffusion", 1, 48)


def test_logistic_non_monotone_row_is_flagged():
    fit = fit_logistic([2, 3, 4, 5], [2, 0, 0, 1], [2, 2, 2, 2])
    assert fit.status in ("ok", "at_bound")
    decreasing = fit_logistic([2, 3, 4, 5], [2, 2, 0, 0], [2, 2, 2, 2])
    assert decreasing.status == "at_bound"  # success falls with N: no step up inside the grid
