"""End to end: a neural sweep over HTTP with real Celery worker processes (spec section 14) — the
per-cell scores, thresholds and collapse, the curves figure, chunk training progress — and a worker
SIGKILLed in the middle of a neural chunk loses no trial and duplicates none."""

import csv
import io
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from molrg import spec
from tests.sweeps.stack import SweepStack
from tests.sweeps.test_sweeps_e2e import _submit, production_stack  # noqa: F401  (the fixture)
from workers.plots import png_size

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NET = {"width": 32, "depth": 2, "batch_size": 64}
TINY = {"ambient_dim": 8, "n_components": 2, "dims": [1, 2], "samples": [1, 4, 16], "samples_per": "dim_ratio",
        "trials": 1, "methods": ["neural", "empirical", "exact"], "eval_samples": 64, "seed": 11}


def _chunk_bytes(networks: int, steps: int) -> str:
    """MOLRG_SWEEP_CHUNK_BYTES that holds ``networks`` networks of TINY's largest trial."""
    per = spec.neural_member_bytes(spec.NeuralOptions(**NET, steps=steps), 8, 2 * 16 * 2)
    return str(networks * per)


def _trials(stack: SweepStack, sweep_id: str) -> list[dict[str, str]]:
    assert stack.client is not None
    rows = list(csv.DictReader(io.StringIO(stack.client.get(f"/api/v1/sweeps/{sweep_id}/trials.csv").text)))
    keys = [(r["method"], r["d"], r["samples"], r["trial"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicated trials"
    return rows


def test_tiny_neural_sweep_over_http(production_stack: SweepStack) -> None:  # noqa: F811
    stack = production_stack
    stack.env["MOLRG_SWEEP_CHUNK_BYTES"] = _chunk_bytes(3, 300)
    stack.start_worker()
    body = {**TINY, "method_options": {"neural": {**NET, "steps": 300}}, "eval_at_steps": [100]}
    job = _submit(stack, body)
    assert job["n_fits"] == 2 * 3 * 1 * 3
    done = stack.wait_job(job["id"], timeout=240)
    assert done["status"] == "succeeded", (done, stack.log("worker0"))
    assert stack.client is not None
    sweep = stack.client.get(f"/api/v1/sweeps/{job['sweep_id']}").json()
    assert sweep["final"] and sweep["progress"]["chunks_total"] == 2  # 6 networks, 3 per chunk
    assert sweep["progress"]["fits_done"] == 18
    for chunk in sweep["chunks"]:  # the last report of each run: it trained, then scored
        assert chunk["progress"]["fits_done"] == chunk["n_fits"], chunk
    cells = {(c["method"], c["d"], c["samples"]): c for c in sweep["cells"]}
    assert len(cells) == 18
    for (method, _, _), c in cells.items():
        for name in ("memorised_fraction", "generalisation_score", "on_support_fraction"):
            assert c[name] is not None and 0.0 <= c[name] <= 1.0, c
        if method == "empirical":  # samples are training points (but where two of them nearly coincide)
            assert c["memorised_fraction"] >= 0.9 and c["generalisation_score"] <= 0.1
        if method == "exact":
            assert c["on_support_fraction"] == 1.0
        if method == "neural":  # also scored after 100 of its 300 steps
            assert set(c["by_step"]) == {"100"} and 0.0 <= c["by_step"]["100"]["generalisation_score"] <= 1.0
        else:
            assert c["by_step"] is None
    lines = {t["method"]: t for t in sweep["transitions"]}
    assert set(lines) == {"neural", "empirical", "exact"}
    for t in lines.values():
        assert [r["d"] for r in t["rows"]] == [1, 2] and t["collapse"]["rows"] == 2
    assert [r["n_star"] for r in lines["empirical"]["rows"]] == [None, None]  # never generalises
    assert [r["n_star"] for r in lines["exact"]["rows"]] == [1, 1]  # generalises from the first ratio
    rows = _trials(stack, job["sweep_id"])
    assert len(rows) == 18 and all(r["generalisation_score"] != "" for r in rows)
    assert all((r["scores_by_step"] != "") == (r["method"] == "neural") for r in rows)
    (figure,) = sweep["figures"]
    assert figure["kind"] == "curves"
    png = stack.client.get(figure["url"])
    assert png.status_code == 200 and png_size(png.content) == (figure["width"], figure["height"])
    assert {h["method"] for h in sweep["heatmaps"]} == {"neural", "empirical", "exact"}
    # the CLI: the scores per cell, the collapse, and every figure downloaded
    key = (stack.data_dir / "api-key").read_text().strip()
    cli = [str(Path(sys.executable).parent / "molrg")]
    env = {**stack.env, "MOLRG_URL": stack.url, "MOLRG_API_KEY": key}
    shown = subprocess.run([*cli, "sweeps", "show", job["sweep_id"]], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "generalisation_score: method=neural" in shown.stdout and "collapse across d" in shown.stdout
    assert "generalisation_score@100: method=neural" in shown.stdout
    listed = subprocess.run([*cli, "sweeps", "list"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and job["sweep_id"] in listed.stdout and "fits 18/18" in listed.stdout, listed
    plots = subprocess.run([*cli, "sweeps", "plots", job["sweep_id"], "-o", str(stack.data_dir / "figs")],
                           env=env, capture_output=True, text=True)
    assert plots.returncode == 0, plots.stderr
    files = plots.stdout.split()
    assert len(files) == 4 and any("curves-K2-n8" in f for f in files)
    assert all(png_size(Path(f).read_bytes())[0] > 0 for f in files)


def test_sigkilled_worker_mid_neural_chunk_loses_and_duplicates_no_trial(production_stack: SweepStack) -> None:  # noqa: F811
    stack = production_stack
    stack.env["MOLRG_SWEEP_CHUNK_BYTES"] = _chunk_bytes(2, 2000)
    first = stack.start_worker()
    body = {**TINY, "methods": ["neural", "exact"], "method_options": {"neural": {**NET, "steps": 2000}}}
    job = _submit(stack, body)
    assert stack.client is not None
    url = f"/api/v1/sweeps/{job['sweep_id']}"
    deadline = time.monotonic() + 180
    while True:  # kill while the second chunk's networks train, after the first chunk was stored
        sweep = stack.client.get(url).json()
        training = [c for c in sweep["chunks"] if c["status"] == "running" and (c["progress"] or {}).get("step")]
        if sweep["progress"]["chunks_done"] >= 1 and training:
            break
        assert time.monotonic() < deadline, stack.log("worker0")
        time.sleep(0.05)
    running = stack.client.get(f"/api/v1/jobs/{job['id']}").json()
    detail = running["progress_detail"]  # what `--wait` shows
    assert detail["total_steps"] == 2000 and detail["step"] >= 1 and detail["chunks_done"] >= 1, detail
    assert 1 / 3 < running["progress"] < 1.0  # one of three chunks done, the next one's training counts
    stack.kill_worker(first)
    (killed,) = [c["index"] for c in stack.client.get(url).json()["chunks"] if c["status"] == "running"]
    assert 0 < training[0]["progress"]["step"] < 2000

    stack.start_worker()
    done = stack.wait_job(job["id"], timeout=300)
    assert done["status"] == "succeeded", (done, stack.log("worker1"))
    sweep = stack.client.get(url).json()
    assert sweep["progress"]["chunks_done"] == sweep["progress"]["chunks_total"] == 3
    assert sweep["progress"]["fits_done"] == job["n_fits"] == 12
    chunk = sweep["chunks"][killed]
    assert chunk["status"] == "done" and chunk["attempts"] == 2 and chunk["worker"].startswith("sweep1@")
    counts = Counter((r["method"], r["d"], r["samples"]) for r in _trials(stack, job["sweep_id"]))
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert all(c["trials"] == 1 and c["generalisation_score"] is not None for c in sweep["cells"])
