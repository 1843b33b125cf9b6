"""Datasets over HTTP: synthetic generation, validation, download, pagination."""

import io
from typing import Any

import numpy as np
import pytest

from molrg import make_molrg
from tests.service.factories import SYNTH, make_dataset


def assert_problem(r: Any, status: int, field: str | None = None, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert {"type", "title", "status", "detail", "instance", "code"} <= body.keys()
    assert body["status"] == status
    if code:
        assert body["code"] == code
    if field:
        assert field in [e["field"] for e in body["errors"]], body
    return body


def test_create_and_download_synthetic(api: Any) -> None:
    h = api.key()
    body = {"name": "x", "synthetic": {"ambient_dim": 48, "dims": [4, 4], "n_samples": 10, "seed": 7}}
    r = api.client.post("/api/v1/datasets", json=body, headers=h)
    assert r.status_code == 201
    ds = r.json()
    assert ds["n_samples"] == 10 and ds["ambient_dim"] == 48 and ds["has_ground_truth"] is True
    assert r.headers["location"] == f"/api/v1/datasets/{ds['id']}"
    ref = make_molrg(48, [4, 4], n_samples=10, seed=7)
    data = api.client.get(f"/api/v1/datasets/{ds['id']}/data.npy", headers=h)
    assert data.headers["content-type"] == "application/octet-stream"
    np.testing.assert_array_equal(np.load(io.BytesIO(data.content)), ref.X)
    labels = np.load(io.BytesIO(api.client.get(ds["links"]["labels"], headers=h).content))
    assert labels.dtype == np.int64 and labels.tolist() == ref.labels.tolist()
    with np.load(io.BytesIO(api.client.get(ds["links"]["bases"], headers=h).content)) as z:
        np.testing.assert_array_equal(z["U_1"], ref.bases[1])
    got = api.client.get(f"/api/v1/datasets/{ds['id']}", headers=h).json()
    assert got["id"] == ds["id"] and got["spec"]["counts"] == [5, 5]


@pytest.mark.parametrize(
    ("synthetic", "field", "reason"),
    [
        ({"ambient_dim": 48, "dims": [30, 30], "n_samples": 10}, "synthetic.dims",
         "sum(dims)=60 exceeds ambient_dim=48 for orthogonal subspaces"),
        ({"ambient_dim": 8, "dims": [8], "n_samples": 10}, "synthetic.dims[0]", "must be < ambient_dim=8"),
        ({"ambient_dim": 8, "dims": [2], "n_samples": 10, "samples_per_component": 3}, "synthetic.n_samples",
         "exactly one"),
        ({"ambient_dim": 8, "dims": [2]}, "synthetic.n_samples", "exactly one"),
        ({"ambient_dim": 8, "dims": [2, 2], "n_samples": 10, "weights": [1.0]}, "synthetic.weights", "len(weights)"),
        ({"ambient_dim": 8, "dims": [2, 2], "n_samples": 10, "weights": [1.0, -1]}, "synthetic.weights", "positive"),
        ({"ambient_dim": 8, "dims": [2], "n_samples": 10**7}, "synthetic.n_samples", "max_rows"),
        ({"ambient_dim": 10**6, "dims": [2], "n_samples": 10}, "synthetic.ambient_dim", "less than or equal to 4096"),
        ({"ambient_dim": 8, "dims": [2, 2], "n_samples": 10, "weights": [1e308, 1e308]}, "synthetic.weights",
         "overflows"),
        ({"ambient_dim": 8, "dims": [2], "n_samples": -1}, "synthetic.n_samples", None),
        ({"ambient_dim": 8, "dims": [], "n_samples": 4}, "synthetic.dims", None),
        ({"ambient_dim": 8, "dims": [2], "n_samples": 4, "bogus": 1}, "synthetic.bogus", None),
        ({"ambient_dim": 8, "dims": [2, 2], "samples_per_component": [1]}, "synthetic.samples_per_component", "len("),
    ],
)
def test_synthetic_validation(sapi: Any, synthetic: dict[str, Any], field: str, reason: str | None) -> None:
    r = sapi.client.post("/api/v1/datasets", json={"name": "bad", "synthetic": synthetic}, headers=sapi.key())
    body = assert_problem(r, 422, field)
    if reason:
        assert any(reason in e["reason"] for e in body["errors"]), body


def test_unknown_top_level_field_and_bad_json(sapi: Any) -> None:
    h = sapi.key()
    assert_problem(sapi.client.post("/api/v1/datasets", json={**SYNTH, "extra": 1}, headers=h), 422, "extra")
    r = sapi.client.post("/api/v1/datasets", content=b"{not json", headers={**h, "content-type": "application/json"})
    assert_problem(r, 422)
    deep = b"[" * 100_000 + b"]" * 100_000
    r = sapi.client.post("/api/v1/datasets", content=deep, headers={**h, "content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_huge_json_body_is_413(make_api: Any, sqlite_url: str) -> None:
    api = make_api(sqlite_url, max_json_bytes=1000)
    r = api.client.post("/api/v1/datasets", json={"name": "x" * 2000, "synthetic": {}}, headers=api.key())
    assert_problem(r, 413, code="payload_too_large")


def test_list_pagination(api: Any) -> None:
    h = api.key()
    ids = [make_dataset(api, h, seed=i)["id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.client.get("/api/v1/datasets", params=params, headers=h).json()
        seen += [d["id"] for d in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1] and pages == 3
    assert_problem(api.client.get("/api/v1/datasets", params={"cursor": "garbage"}, headers=h), 422, "cursor")
    assert_problem(api.client.get("/api/v1/datasets", params={"limit": 0}, headers=h), 422, "limit")


def test_missing_dataset_is_404(sapi: Any) -> None:
    h = sapi.key()
    r = sapi.client.get("/api/v1/datasets/00000000-0000-0000-0000-000000000000", headers=h)
    assert_problem(r, 404, code="not_found")
    assert_problem(sapi.client.get("/api/v1/datasets/not-a-uuid", headers=h), 422, "dataset_id")
