"""The sweep HTTP API through a TestClient, with the worker pipeline run in-process (no Celery)."""

import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.deps import get_queue
from service.main import create_app
from service.settings import ServiceSettings
from service.sweeps import CELL_CSV_COLUMNS, TRIAL_CSV_COLUMNS
from tests.service.conftest import Api, FakeQueue
from tests.sweeps.helpers import TINY
from workers import plots
from workers import sweeps as ws
from workers.settings import WorkerSettings

WORKER = WorkerSettings(heartbeat_interval_s=0.1, stale_after_s=5, job_max_attempts=3, sweep_chunk_fits=6)


@pytest.fixture
def api(maker: sessionmaker[Session], db_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = ServiceSettings(data_dir=tmp_path / "data", database_url=db_url, max_sweep_fits=500)
    app = create_app(settings)
    with TestClient(app) as client:
        a = Api(client, settings, maker)
        app.dependency_overrides[get_queue] = lambda: FakeQueue(maker, a.sent)
        yield a


def run_worker(maker: sessionmaker[Session], job_id: str, stop_after: int | None = None) -> None:
    """What the Celery worker does for a sweep job: plan, then run the chunks (the first ``stop_after``)."""
    published: list[uuid.UUID] = []
    assert ws.plan_sweep_job(maker, WORKER, uuid.UUID(job_id), published.append, "w") == "planned"
    for cid in published[:stop_after]:
        ws.run_sweep_chunk(maker, WORKER, cid, lambda: torch.device("cpu"), "w")


def problem_fields(resp: Any) -> dict[str, str]:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    return {e["field"]: e["reason"] for e in resp.json()["errors"]}


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"ambient_dim": 8, "n_components": 2, "dims": [3, 5], "methods": ["subspace_clustering"]}, "dims",
     "exceeds ambient_dim"),
    ({"dims": [2, 8]}, "dims", "must be < ambient_dim"),
    ({"methods": ["pca", "magic"]}, "methods[1]", "'neural', 'empirical' or 'exact'"),
    ({"n_components": [2, 3], "ambient_dim": 32}, "methods", "pca fits one subspace"),
    ({"trials": 1000}, "trials", "max_sweep_fits=500"),
    ({"methods": ["diffusion"], "method_options": {"diffusion": {"stepz": 3}}}, "method_options.diffusion.stepz",
     "unknown option"),
    ({"method_options": {"diffusion": {"steps": 3}}}, "method_options.diffusion", "not in methods"),
    ({"samples": [3, 3]}, "samples", "duplicates"),
])
def test_invalid_sweeps_are_refused_naming_the_field(api: Api, change: dict[str, Any], field: str,
                                                     words: str) -> None:
    resp = api.client.post("/api/v1/sweeps", json={**TINY, **change}, headers=api.key())
    fields = problem_fields(resp)
    assert field in fields and words in fields[field], fields
    assert not api.sent


def test_sweep_over_http_with_partial_then_final_results(api: Api) -> None:
    h = api.key()
    resp = api.client.post("/api/v1/sweeps", json=TINY, headers=h)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert resp.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["kind"] == "sweep" and job["status"] == "queued" and job["n_fits"] == 18
    sweep_url = f"/api/v1/sweeps/{job['sweep_id']}"
    assert job["links"]["sweep"] == sweep_url
    assert [(s.name, s.committed) for s in api.sent] == [("molrg.sweep", True)]

    sweep = api.client.get(sweep_url, headers=h).json()
    assert sweep["status"] == "queued" and sweep["progress"]["chunks_total"] is None and sweep["cells"] == []
    assert api.client.get(f"{sweep_url}/heatmap.png", headers=h).status_code == 409

    run_worker(api.maker, job["id"], stop_after=1)
    sweep = api.client.get(sweep_url, headers=h).json()
    assert sweep["status"] == "running" and not sweep["final"]
    assert sweep["progress"] == {"chunks_done": 1, "chunks_total": 3, "fits_done": 6, "fits_total": 18,
                                 "fraction": pytest.approx(1 / 3)}
    assert len(sweep["cells"]) == 2  # partial results are readable before the end

    from db.models import SweepChunk
    with api.maker() as s:  # the other two chunks, as another worker would run them
        rest = [c.id for c in s.query(SweepChunk).filter(SweepChunk.status == "pending").order_by(SweepChunk.index)]
    for cid in rest:
        ws.run_sweep_chunk(api.maker, WORKER, cid, lambda: torch.device("cpu"), "w2")

    sweep = api.client.get(sweep_url, headers=h).json()
    assert sweep["status"] == "succeeded" and sweep["final"] and sweep["progress"]["fraction"] == 1.0
    assert len(sweep["cells"]) == 6 and all(c["trials"] == 3 for c in sweep["cells"])
    (tr,) = sweep["transitions"]
    assert [(r["d"], r["n_star"]) for r in tr["rows"]] == [(2, 2), (3, 3)]
    assert tr["linear_fit"]["slope"] == pytest.approx(1.0) and tr["linear_fit"]["intercept"] == pytest.approx(0.0)
    (hm,) = sweep["heatmaps"]

    done = api.client.get(f"/api/v1/jobs/{job['id']}", headers=h).json()
    assert done["status"] == "succeeded" and done["result"]["sweep_id"] == job["sweep_id"]

    png = api.client.get(hm["url"], headers=h)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    size = plots.png_size(png.content)
    assert size == (hm["width"], hm["height"]) == (int(png.headers["X-Image-Width"]),
                                                  int(png.headers["X-Image-Height"]))
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png.content), format="png")  # decodes: a real image
    assert pixels.shape[:2] == (size[1], size[0]) and pixels.std() > 0.05
    # With one method/K/n the query parameters are optional.
    assert api.client.get(f"{sweep_url}/heatmap.png", headers=h).content == png.content

    trials = list(csv.DictReader(io.StringIO(api.client.get(f"{sweep_url}/trials.csv", headers=h).text)))
    assert len(trials) == 18 and tuple(trials[0]) == TRIAL_CSV_COLUMNS
    assert {(r["d"], r["samples"]) for r in trials} == {(d, s) for d in "23" for s in "234"}
    assert all(r["success"] in ("0", "1") and float(r["fit_seconds"]) >= 0 for r in trials)
    cells_resp = api.client.get(f"{sweep_url}/cells.csv", headers=h)
    assert cells_resp.headers["content-type"].startswith("text/csv")
    cells = list(csv.DictReader(io.StringIO(cells_resp.text)))
    assert len(cells) == 6 and tuple(cells[0]) == CELL_CSV_COLUMNS
    assert {(c["d"], c["samples"], c["success_rate"]) for c in cells if c["d"] == "3"} == {
        ("3", "2", "0.0"), ("3", "3", "1.0"), ("3", "4", "1.0")}

    listing = api.client.get("/api/v1/sweeps", headers=h).json()
    assert [s["id"] for s in listing["items"]] == [job["sweep_id"]]


def test_sweeps_are_owner_scoped(api: Api) -> None:
    job = api.client.post("/api/v1/sweeps", json=TINY, headers=api.key("alice")).json()
    bob = api.key("bob")
    for path in ("", "/trials.csv", "/cells.csv", "/heatmap.png"):
        assert api.client.get(f"/api/v1/sweeps/{job['sweep_id']}{path}", headers=bob).status_code == 404
    assert api.client.get("/api/v1/sweeps", headers=bob).json()["items"] == []


def test_idempotent_submission_and_cancel(api: Api) -> None:
    h = {**api.key(), "Idempotency-Key": "sweep-1"}
    first = api.client.post("/api/v1/sweeps", json=TINY, headers=h).json()
    again = api.client.post("/api/v1/sweeps", json=TINY, headers=h)
    assert again.status_code == 202 and again.json()["sweep_id"] == first["sweep_id"] and len(api.sent) == 1
    cancelled = api.client.post(f"/api/v1/sweeps/{first['sweep_id']}/cancel", headers=h).json()
    assert cancelled["status"] == "cancelled"
    # The delivered message then finds nothing to do.
    assert ws.plan_sweep_job(api.maker, WORKER, uuid.UUID(first["id"]), lambda _: None, "w") == "skipped"
