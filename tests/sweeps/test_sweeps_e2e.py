"""End to end: sweeps over HTTP with real Celery worker processes, on the embedded default and on
PostgreSQL + Redis; a worker SIGKILLed mid-sweep loses no trial and duplicates none."""

import csv
import io
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db.dbfixtures import drop_pg_database, port_open
from tests.sweeps.stack import SweepStack, base_env, postgres_redis_env
from workers.plots import png_size

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAST = {"MOLRG_HEARTBEAT_INTERVAL_S": "0.5", "MOLRG_STALE_AFTER_S": "4", "MOLRG_REAP_INTERVAL_S": "1",
        "MOLRG_REPUBLISH_AFTER_S": "4"}


def _stack(backend: str, tmp_path: Path) -> Iterator[SweepStack]:
    extra = dict(FAST)
    if backend == "postgres+redis":
        extra.update(postgres_redis_env())
    stack = SweepStack(tmp_path, base_env(extra))
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()
        if "MOLRG_DATABASE_URL" in extra:
            drop_pg_database(extra["MOLRG_DATABASE_URL"])


def _pg_redis() -> bool:
    return port_open("127.0.0.1", 5432) and port_open("127.0.0.1", 6379)


@pytest.fixture(params=["embedded", pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis])])
def sweep_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SweepStack]:
    if request.param == "postgres+redis" and not _pg_redis():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 or Redis at 127.0.0.1:6379 not reachable")
    yield from _stack(request.param, tmp_path)


@pytest.fixture
def production_stack(tmp_path: Path) -> Iterator[SweepStack]:
    """PostgreSQL + Redis where reachable (the production path), else the embedded default."""
    yield from _stack("postgres+redis" if _pg_redis() else "embedded", tmp_path)


def _submit(stack: SweepStack, body: dict) -> dict:
    assert stack.client is not None
    resp = stack.client.post("/api/v1/sweeps", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()


def _cells_per_method(stack: SweepStack, sweep_id: str) -> Counter[tuple[str, str, str, str]]:
    assert stack.client is not None
    text = stack.client.get(f"/api/v1/sweeps/{sweep_id}/trials.csv").raise_for_status().text
    rows = list(csv.DictReader(io.StringIO(text)))
    keys = [(r["method"], r["n_components"], r["d"], r["samples"], r["trial"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicated trials"
    return Counter((m, K, d, s) for m, K, d, s, _ in keys)


def test_sweep_two_components_over_http(sweep_stack: SweepStack) -> None:
    """K = 1 and K = 2 in one grid: pca on K = 1 cells, subspace_clustering on both; N* = d."""
    sweep_stack.env["MOLRG_SWEEP_CHUNK_FITS"] = "36"
    sweep_stack.start_worker()
    body = {"ambient_dim": 12, "n_components": [1, 2], "dims": [2, 3], "samples": [1, 2, 3, 4], "trials": 3,
            "methods": ["pca", "subspace_clustering"], "seed": 7}
    job = _submit(sweep_stack, body)
    assert job["n_fits"] == 2 * 4 * 3 * 2 + 2 * 4 * 3  # K=1: two methods; K=2: subspace_clustering only
    done = sweep_stack.wait_job(job["id"], timeout=120)
    assert done["status"] == "succeeded", done
    assert done["result"]["sweep_id"] == job["sweep_id"]
    assert sweep_stack.client is not None
    sweep = sweep_stack.client.get(f"/api/v1/sweeps/{job['sweep_id']}").json()
    assert sweep["final"] and sweep["progress"]["fits_done"] == job["n_fits"]
    assert sweep["progress"]["chunks_done"] == sweep["progress"]["chunks_total"] == 2
    lines = {(t["method"], t["n_components"]): t for t in sweep["transitions"]}
    assert set(lines) == {("pca", 1), ("subspace_clustering", 1), ("subspace_clustering", 2)}
    for t in lines.values():  # noiseless data: the transition is exactly at N (or N_k) = d
        assert [(r["d"], r["n_star"]) for r in t["rows"]] == [(2, 2), (3, 3)], t
    assert set(_cells_per_method(sweep_stack, job["sweep_id"]).values()) == {3}
    assert len(sweep["heatmaps"]) == 3
    for hm in sweep["heatmaps"]:
        png = sweep_stack.client.get(hm["url"])
        assert png.status_code == 200 and png_size(png.content) == (hm["width"], hm["height"])


def test_sigkilled_worker_loses_and_duplicates_no_trial(production_stack: SweepStack) -> None:
    stack = production_stack
    stack.env["MOLRG_SWEEP_CHUNK_FITS"] = "16"  # two cells (4 trials x 2 methods each) per chunk
    first = stack.start_worker()
    body = {"ambient_dim": 8, "n_components": 1, "dims": [2], "samples": [2, 3, 4, 5], "trials": 4,
            "methods": ["pca", "diffusion"], "method_options": {"diffusion": {"steps": 2000, "tol": 1e-12}},
            "seed": 3}
    job = _submit(stack, body)
    assert stack.client is not None
    url = f"/api/v1/sweeps/{job['sweep_id']}"
    deadline = time.monotonic() + 120
    while True:  # kill in the middle of the second chunk, after the first one was stored
        sweep = stack.client.get(url).json()
        if sweep["progress"]["chunks_done"] >= 1 and any(c["status"] == "running" for c in sweep["chunks"]):
            break
        assert time.monotonic() < deadline, stack.log("worker0")
        time.sleep(0.02)
    stack.kill_worker(first)
    # A chunk still 'running' after the kill was interrupted: completion is one atomic transaction.
    sweep = stack.client.get(url).json()
    (killed,) = [c["index"] for c in sweep["chunks"] if c["status"] == "running"]
    assert sweep["progress"]["chunks_done"] == 1

    stack.start_worker()
    done = stack.wait_job(job["id"], timeout=120)
    assert done["status"] == "succeeded", done
    sweep = stack.client.get(url).json()
    assert sweep["progress"]["chunks_done"] == sweep["progress"]["chunks_total"] == 2
    assert sweep["progress"]["fits_done"] == job["n_fits"] == 32
    chunk = sweep["chunks"][killed]
    assert chunk["status"] == "done" and chunk["attempts"] == 2 and chunk["worker"].startswith("sweep1@")
    counts = _cells_per_method(stack, job["sweep_id"])
    assert len(counts) == 8 and set(counts.values()) == {4}  # every cell: exactly `trials` trials
    assert all(c["trials"] == 4 for c in sweep["cells"]) and len(sweep["cells"]) == 8


def test_cancel_a_running_sweep_over_http(production_stack: SweepStack) -> None:
    stack = production_stack
    stack.env["MOLRG_SWEEP_CHUNK_FITS"] = "8"
    stack.start_worker()
    body = {"ambient_dim": 8, "n_components": 1, "dims": [2, 3], "samples": [2, 3, 4, 5], "trials": 4,
            "methods": ["pca", "diffusion"], "method_options": {"diffusion": {"steps": 2000, "tol": 1e-12}}}
    job = _submit(stack, body)
    assert stack.client is not None
    url = f"/api/v1/sweeps/{job['sweep_id']}"
    deadline = time.monotonic() + 120
    while stack.client.get(url).json()["progress"]["chunks_done"] < 1:
        assert time.monotonic() < deadline, stack.log("worker0")
        time.sleep(0.05)
    resp = stack.client.post(f"{url}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] in ("cancelling", "cancelled")
    done = stack.wait_job(job["id"], timeout=60)
    assert done["status"] == "cancelled" and done["result"]["sweep_id"] == job["sweep_id"]
    sweep = stack.client.get(url).json()
    statuses = Counter(c["status"] for c in sweep["chunks"])
    assert statuses["done"] >= 1 and statuses["cancelled"] >= 1 and set(statuses) <= {"done", "cancelled"}
    assert sweep["progress"]["chunks_done"] < sweep["progress"]["chunks_total"] == 8
    assert sweep["cells"]  # the chunks stored before the cancel stay readable
