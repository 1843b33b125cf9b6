"""The results page in headless Chromium (DevTools protocol, real DOM): a finished sweep's heatmap decoded and
its transitions table; a fit's numbers, loss curve and figures; a sample set's nested diagnostics and grid; a
running sweep's progress; the key kept in memory only."""

import re
from collections.abc import Iterator

import pytest

from molrg_client import Client
from tests.client.browser import CHROMIUM, Browser
from tests.client.conftest import wait_plots
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]

READY = "document.body.dataset.ready === '1' || document.body.dataset.ready === 'error'"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as b:
        yield b


def _load(b: Browser, url: str) -> None:
    b.open("about:blank")
    b.open(url)
    b.wait_for(READY, timeout=90)
    assert b.evaluate("document.body.dataset.ready") == "1", b.evaluate("document.getElementById('error').textContent")


def test_finished_sweep_heatmap_transitions_curves_cells(client: Client, embedded_stack: Stack, api_key: str,
                                                         browser: Browser) -> None:
    job = client.jobs.wait(client.sweeps.create({"ambient_dim": 10, "dims": [2, 3], "samples": [1, 2, 3, 4],
                                                 "trials": 2, "methods": ["pca"], "seed": 5}), timeout=120)
    assert job.status == "succeeded", job.error
    sweep = client.sweeps.get(job.result["sweep_id"]).raw
    _load(browser, f"{embedded_stack.url}/results#job={job.id}&key={api_key}")
    b = browser
    heat = b.evaluate("""Array.from(document.querySelectorAll('img[data-kind=heatmap]')).map(i =>
        [i.complete, i.naturalWidth, i.naturalHeight])""")
    assert heat == [[True, h["width"], h["height"]] for h in sweep["heatmaps"]] and heat[0][1] > 0
    rows = b.evaluate("""Array.from(document.querySelectorAll('.transitions table.transitions-table tbody tr'))
        .map(tr => Array.from(tr.cells).map(td => td.textContent))""")
    header = b.evaluate("Array.from(document.querySelectorAll('.transitions-table thead th')).map(t => t.textContent)")
    t_rows = sweep["transitions"][0]["rows"]
    assert len(rows) == len(t_rows) == 2
    for row, expected in zip(rows, t_rows, strict=True):
        got = dict(zip(header, row, strict=True))
        assert got["d"] == str(expected["d"]) and got["n_star"] == str(expected["n_star"])
    assert "N* = 1 d" in b.evaluate("document.querySelector('.transitions').textContent")
    assert b.evaluate("document.querySelectorAll('svg.chart path[data-series]').length") == 2  # one curve per d
    assert b.evaluate("document.querySelectorAll('table.cells-table tbody tr').length") == len(sweep["cells"])
    # The key lives in the fragment and the script's memory only.
    assert b.evaluate("localStorage.length + sessionStorage.length") == 0 and b.evaluate("document.cookie") == ""
    script = embedded_stack.client.get("/results/results.js").text
    assert not re.search(r"localStorage|sessionStorage|document\.cookie", script.replace("no localStorage", ""))


def test_fit_and_sample_set_pages(client: Client, embedded_stack: Stack, api_key: str, browser: Browser) -> None:
    ds = client.datasets.create_synthetic(ambient_dim=16, dims=[2, 2], n_samples=60, seed=4)
    job = client.jobs.wait(client.fits.create(ds, 2, [2, 2], method="diffusion", options={"steps": 30}), timeout=120)
    assert job.status == "succeeded", job.error
    wait_plots(lambda: client.models.plots(job.model_id), {"loss", "projection", "jacobian"})
    _load(browser, f"{embedded_stack.url}/results#job={job.id}&key={api_key}")
    b = browser
    model = client.models.get(job.model_id)
    shown = b.evaluate("document.querySelector('section.model tr[data-key=metrics] tr[data-key=recovery_error] td')"
                       ".textContent")
    assert float(shown) == pytest.approx(model.metrics["recovery_error"], rel=1e-3)
    # nested: metrics.info.steps_run
    assert b.evaluate("document.querySelector('tr[data-key=info] tr[data-key=steps_run] td').textContent") == str(
        model.metrics["info"]["steps_run"])
    assert b.evaluate("document.querySelectorAll('.metrics svg.chart path[data-series=loss]').length") == 1
    for kind in ("loss", "projection", "jacobian"):
        assert b.evaluate(f"document.querySelector('img.img-ok[data-kind={kind}]').naturalWidth") > 0

    sj = client.jobs.wait(client.samples.create(job.model_id, n_samples=40, steps=6), timeout=120)
    assert sj.status == "succeeded", sj.error
    wait_plots(lambda: client.sample_sets.plots(sj.sample_set_id), {"grid"})
    _load(browser, f"{embedded_stack.url}/results#job={sj.id}&key={api_key}")
    diag = client.sample_sets.get(sj.sample_set_id).diagnostics
    for path in (("fitted", "residual", "median"), ("true", "frequencies"), ("memorisation", "generalisation_score")):
        sel = " ".join(f"tr[data-key={k}]" for k in ("diagnostics", *path)) + " td"
        text = b.evaluate(f"document.querySelector('section.sample-set {sel}').textContent")
        value = diag
        for k in path:
            value = value[k]
        if isinstance(value, list):
            assert [float(v) for v in text.strip("[]").split(",")] == pytest.approx(value, rel=1e-3)
        else:
            assert float(text) == pytest.approx(value, rel=1e-3), (path, text)
    assert b.evaluate("document.querySelector('img.img-ok[data-kind=grid]').naturalWidth") > 0

    bad = f"{embedded_stack.url}/results#job={job.id}&key=wrong"
    b.open("about:blank")
    b.open(bad)
    b.wait_for(READY)
    assert b.evaluate("document.body.dataset.ready") == "error"
    assert "401" in b.evaluate("document.getElementById('error').textContent") or "unauthorized" in b.evaluate(
        "document.getElementById('error').textContent").lower()


def test_running_sweep_shows_progress(client: Client, embedded_stack: Stack, api_key: str, browser: Browser) -> None:
    # Long enough to be seen running, bounded (5,000 steps per fit) so the worker is never held for long even
    # if the cancel below arrives after the fits are done.
    spec = {"ambient_dim": 10, "dims": [2], "samples": [2, 3], "trials": 2, "methods": ["diffusion"],
            "method_options": {"diffusion": {"steps": 5000}}, "seed": 1}
    job = client.sweeps.create(spec)
    try:
        b = browser
        b.open("about:blank")
        b.open(f"{embedded_stack.url}/results#job={job.id}&key={api_key}")
        b.wait_for("document.body.dataset.ready === 'running' && !!document.querySelector('section.sweep')", timeout=60)
        assert b.evaluate("document.querySelector('section.job progress').value") < 1
        assert "partial results" in b.evaluate("document.querySelector('section.sweep').textContent")
    finally:
        client.jobs.cancel(job)
    b.wait_for(READY, timeout=240)
    final = client.jobs.wait(job, timeout=60)
    assert b.evaluate("document.body.dataset.ready") == "1"
    assert final.status in ("cancelled", "succeeded")
    assert final.status in b.evaluate("document.querySelector('section.job .progress').textContent")


def test_neural_fit_page_and_show(client: Client, embedded_stack: Stack, api_key: str, browser: Browser) -> None:
    """A neural fit (fields no code here names: learned_subspaces, principal angles, network config) shows as
    nested tables on the page and as dotted keys in ``molrg models show``."""
    from click.testing import CliRunner

    from service.cli import cli

    ds = client.datasets.create_synthetic(ambient_dim=16, dims=[2, 2], n_samples=60, seed=2)
    job = client.jobs.wait(client.fits.create(ds, 2, [2, 2], method="neural", options={
        "steps": 40, "width": 32, "depth": 2, "batch_size": 32}), timeout=300)
    assert job.status == "succeeded", job.error
    model = client.models.get(job.model_id)
    _load(browser, f"{embedded_stack.url}/results#job={job.id}&key={api_key}")
    b = browser
    vs_truth = model.metrics["learned_subspaces"]["vs_truth"]
    cell = b.evaluate("document.querySelector('section.model tr[data-key=learned_subspaces] tr[data-key=vs_truth] "
                      "tr[data-key=max_error] td').textContent")
    assert float(cell) == pytest.approx(vs_truth["max_error"], rel=1e-3)
    angles = b.evaluate("document.querySelector('tr[data-key=vs_truth] tr[data-key=principal_angles] td').textContent")
    assert angles.startswith("[[") and str(round(vs_truth["principal_angles"][0][0], 3))[:4] in angles
    assert b.evaluate("document.querySelector('section.model tr[data-key=config] tr[data-key=n_parameters] td')"
                      ".textContent") == str(model.config["n_parameters"])
    assert b.evaluate("document.querySelectorAll('.metrics svg.chart path[data-series=loss]').length") == 1
    shown = CliRunner().invoke(cli, ["models", "show", model.id], catch_exceptions=False,
                               env={"MOLRG_URL": embedded_stack.url, "MOLRG_API_KEY": api_key})
    assert shown.exit_code == 0, shown.stderr
    assert "learned_subspaces.vs_truth.max_error" in shown.stdout and "n_parameters" in shown.stdout
