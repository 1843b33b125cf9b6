"""``molrg ... show``: every number of the resource as a readable table; ``--json`` stays the resource."""

import json
from typing import Any

import pytest
from click.testing import CliRunner

from molrg_client import Client
from molrg_client.show import flatten, fmt, show_model, show_sample_set, show_sweep
from service.cli import cli
from tests.e2e.conftest import Stack

DIAG = {"n_samples": 50,
        "fitted": {"residual": {"median": 1.98e-16, "mean": 2.19e-16, "p90": 3.55e-16, "max": 6.14e-16},
                   "frequencies": [0.52, 0.48], "frequency_chi2_pvalue": 0.7773},
        "true": {"residual": {"median": 0.03735, "mean": 0.04188, "p90": 0.07757, "max": 0.08019},
                 "frequencies": [0.48, 0.52], "frequency_chi2_pvalue": 0.6613},
        "memorisation": {"ratio_median": 0.7063, "memorised_fraction": 0.08, "generalisation_score": 0.92}}


def _leaves(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _leaves(v)]
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        return [x for v in obj for x in _leaves(v)]
    return [obj]


def _numbers_shown(resource: dict[str, Any], text: str, skip: tuple[str, ...] = ("links",)) -> None:
    for key, value in flatten({k: v for k, v in resource.items() if k not in skip}):
        for leaf in _leaves(value):
            if isinstance(leaf, int | float) and not isinstance(leaf, bool):
                assert fmt(leaf) in text or fmt(abs(leaf)) in text, (key, leaf)  # "N* = 1 d - 0.5"


def test_sample_set_diagnostics_fitted_vs_true_table() -> None:
    text = show_sample_set({"id": "s1", "model_id": "m1", "n_samples": 50, "sampler": "heun", "steps": 18,
                            "seed": 0, "diagnostics": DIAG, "links": {}})
    _numbers_shown(DIAG, text)
    header = next(line for line in text.splitlines() if "fitted" in line and "true" in line)
    assert header.split() == ["fitted", "true"]
    row = next(line for line in text.splitlines() if line.strip().startswith("residual.median"))
    assert row.split() == ["residual.median", "1.98e-16", "0.03735"]
    assert "memorisation.generalisation_score  0.92" in text


def test_unknown_nested_metrics_show_without_code_for_them() -> None:
    """A neural fit's metrics (fields this module has never heard of) show as dotted keys."""
    metrics = {"recovery_error": 0.012, "network": {"params": 123456, "layers": [64, 64], "train": {
        "epochs": 40, "final_loss": 0.00123}}, "history": [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]}
    text = show_model({"id": "m", "method": "neural", "n_components": 1, "dims": [2], "ambient_dim": 8,
                       "weights": [1.0], "metrics": metrics, "links": {}})
    assert "network.train.final_loss  0.00123" in text and "network.layers" in text and "[64, 64]" in text
    assert [line.split() for line in text.splitlines() if line.strip().startswith(("epoch", "1 ", "2 "))] == [
        ["epoch", "loss"], ["1", "0.5"], ["2", "0.25"]]


def test_sweep_grid_and_transitions() -> None:
    cells = [{"method": "pca", "n_components": 1, "ambient_dim": 12, "d": d, "samples": N, "trials": 2,
              "successes": 2 * (N >= d), "success_rate": float(N >= d), "error_median": 0.5 / N}
             for d in (2, 3) for N in (1, 2, 3, 4)]
    sweep = {"id": "sw", "status": "succeeded", "final": True, "spec": {"dims": [2, 3]}, "cells": cells,
             "progress": {"fits_done": 16, "fits_total": 16}, "chunks": [], "heatmaps": [], "links": {},
             "transitions": [{"method": "pca", "n_components": 1, "ambient_dim": 12,
                              "rows": [{"d": 2, "n_star": 2, "n_star_logistic": 1.5},
                                       {"d": 3, "n_star": 3, "n_star_logistic": 2.5}],
                              "linear_fit": {"slope": 1.0, "intercept": -0.25, "r2": 0.99, "n_points": 2}}]}
    lines = show_sweep(sweep).splitlines()
    assert "  linear_fit: N* = 1 d - 0.25  (r2 0.99, 2 points)" in lines
    i = lines.index("  success_rate: method=pca K=1 n=12 (rows d, columns N)")
    assert [line.split() for line in lines[i + 1:i + 4]] == [["d", "1", "2", "3", "4"], ["2", "0", "1", "1", "1"],
                                                              ["3", "0", "0", "1", "1"]]
    assert any(line.split() == ["2", "2", "1.5"] for line in lines)


@pytest.mark.e2e
def test_show_commands_against_the_service(client: Client, embedded_stack: Stack, api_key: str) -> None:
    runner = CliRunner()
    env = {"MOLRG_URL": embedded_stack.url, "MOLRG_API_KEY": api_key}

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    ds = client.datasets.create_synthetic(ambient_dim=16, dims=[2, 2], n_samples=60, seed=2)
    job = client.jobs.wait(client.fits.create(ds, 2, [2, 2], method="subspace_clustering"), timeout=120)
    sj = client.jobs.wait(client.samples.create(job.model_id, n_samples=40, steps=6), timeout=120)
    sw = client.jobs.wait(client.sweeps.create({"ambient_dim": 10, "dims": [2, 3], "samples": [1, 2, 3, 4],
                                                "trials": 2, "methods": ["pca"], "seed": 3}), timeout=120)
    assert job.status == sj.status == sw.status == "succeeded"
    cases = [(("datasets", "show", ds.id), f"/datasets/{ds.id}"),
             (("models", "show", job.model_id), f"/models/{job.model_id}"),
             (("sample-sets", "show", sj.sample_set_id), f"/sample-sets/{sj.sample_set_id}"),
             (("jobs", "show", sw.id), f"/jobs/{sw.id}"),
             (("sweeps", "show", sw.result["sweep_id"]), f"/sweeps/{sw.result['sweep_id']}")]
    for args, path in cases:
        resource = embedded_stack.client.get("/api/v1" + path).raise_for_status().json()
        text = run(*args)
        skip = ("links", "cells") if args[0] == "sweeps" else ("links",)
        _numbers_shown(resource, text, skip)
        assert json.loads(run(*args, "--json")) == resource  # --json is the resource, unchanged
    diag = run("sample-sets", "show", sj.sample_set_id)
    for word in ("fitted", "true", "residual.median", "frequencies", "memorisation.generalisation_score"):
        assert word in diag
    sweep_text = run("sweeps", "show", sw.result["sweep_id"])
    assert "success_rate: method=pca K=1 n=10" in sweep_text and "linear_fit: N* = 1 d" in sweep_text
