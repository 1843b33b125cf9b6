"""Hostile input on every operation: junk bodies, params and headers give a 4xx problem+json, never a 5xx."""

import json
import uuid
from typing import Any

import pytest

from tests.service.factories import insert_model, insert_sample_set, make_dataset, submit_fit

JUNK_BODIES: list[Any] = [
    None, [], "x", 0, {}, {"a": 1}, {"name": None}, [[[[[]]]]],
    {"name": "x", "synthetic": {"ambient_dim": -5, "dims": [-1], "n_samples": -3}},
    {"name": "x", "synthetic": {"ambient_dim": 10**30, "dims": [10**30], "n_samples": 10**30}},
    {"name": "x", "synthetic": {"ambient_dim": 8, "dims": [2], "n_samples": 5, "noise_std": 1e400}},
    {"name": "x", "synthetic": {"ambient_dim": 8, "dims": [2], "samples_per_component": [10**30]}},
    {"name": "x", "synthetic": {"ambient_dim": 8, "dims": [2] * 10_000, "n_samples": 5}},
    {"name": "x", "synthetic": {"ambient_dim": "8", "dims": "2", "n_samples": 1.5}},
    {"dataset_id": "nope", "n_components": 1, "dims": [1]},
    {"dataset_id": str(uuid.uuid4()), "n_components": 10**30, "dims": [10**30], "method": "pca", "seed": 10**30},
    {"n_samples": -1, "steps": 10**30, "sampler": None, "seed": "a"},
    {"n_samples": 1e308, "steps": 1.0},
]
RAW_BODIES = [b"NaN", b'{"name": NaN}', b"\xff\xfe", b'{"a":' * 5000, b"[" * 50_000]


def _paths(spec: dict[str, Any], ids: dict[str, str]) -> list[tuple[str, str]]:
    ops = []
    for path, item in spec["paths"].items():
        for method in item:
            concrete = path
            for name, value in ids.items():
                concrete = concrete.replace("{" + name + "}", value)
            ops.append((method.upper(), concrete))
    return ops


def _check(r: Any) -> None:
    assert r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text[:200]
        body = r.json()
        assert body["status"] == r.status_code and body["code"]


@pytest.mark.slow
def test_no_5xx_on_hostile_requests(sapi: Any) -> None:
    h = sapi.key()
    ds = make_dataset(sapi, h)
    job = submit_fit(sapi, h, ds["id"])
    _fit, model_id = insert_model(sapi, "alice", ds["id"])
    set_id = insert_sample_set(sapi, "alice", model_id)
    spec = sapi.client.get("/openapi.json").json()
    good = {"dataset_id": ds["id"], "job_id": job["id"], "model_id": model_id, "sample_set_id": set_id}
    bad_ids = {k: v for k, v in zip(good, ["0", "%00", str(uuid.uuid4()), "' OR 1=1 --"], strict=True)}
    for ids in (good, bad_ids):
        for method, path in _paths(spec, ids):
            if method == "GET":
                for params in ({}, {"limit": -1}, {"limit": 10**30}, {"cursor": "\u0000"}, {"max_points": "x"},
                               {"kind": "x", "status": "y"}, {"name": "a" * 5000}):
                    _check(sapi.client.get(path, params=params, headers=h))
                continue
            if path.endswith("/upload"):
                _check(sapi.client.post(path, headers=h))
                _check(sapi.client.post(path, data={"file": "not a file"}, headers=h))
                _check(sapi.client.post(path, files={"nofile": ("a", b"1")}, headers=h))
                continue
            for body in JUNK_BODIES:
                _check(sapi.client.request(method, path, content=json.dumps(body),
                                           headers=h | {"content-type": "application/json"}))
            for raw in RAW_BODIES:
                _check(sapi.client.request(method, path, content=raw, headers=h | {"content-type": "application/json"}))
            _check(sapi.client.request(method, path, json={}, headers=h | {"Idempotency-Key": "k" * 500}))
            _check(sapi.client.request(method, path, json={}, headers={"Authorization": "Bearer \u00e9".encode("latin-1")}))
