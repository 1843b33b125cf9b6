"""Idempotency-Key: same key + body -> the original resource and status; other body -> 422."""

from typing import Any

import numpy as np

from tests.service.factories import SYNTH, insert_model, make_dataset
from tests.service.test_datasets import assert_problem
from tests.service.test_uploads import npy


def test_dataset_replay_and_reuse(api: Any) -> None:
    h = api.key() | {"Idempotency-Key": "k-1"}
    first = api.client.post("/api/v1/datasets", json=SYNTH, headers=h)
    again = api.client.post("/api/v1/datasets", json=SYNTH, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = {"name": "other", "synthetic": SYNTH["synthetic"]}
    assert_problem(api.client.post("/api/v1/datasets", json=other, headers=h), 422, code="idempotency_key_reused")
    assert len(api.client.get("/api/v1/datasets", headers=h).json()["items"]) == 1
    # keys are per owner
    bob = api.key("bob") | {"Idempotency-Key": "k-1"}
    assert api.client.post("/api/v1/datasets", json=SYNTH, headers=bob).json()["id"] != first.json()["id"]


def test_fit_and_sample_replay_publish_once(api: Any) -> None:
    plain = api.key()
    ds = make_dataset(api, plain)
    h = plain | {"Idempotency-Key": "fit-1"}
    body = {"dataset_id": ds["id"], "n_components": 2, "dims": [2, 3], "method": "subspace_clustering"}
    a = api.client.post("/api/v1/fits", json=body, headers=h)
    b = api.client.post("/api/v1/fits", json=body, headers=h)
    assert a.status_code == b.status_code == 202 and a.json()["id"] == b.json()["id"]
    assert b.headers["location"] == a.headers["location"]
    assert len(api.sent) == 1
    assert_problem(api.client.post("/api/v1/fits", json=body | {"seed": 9}, headers=h), 422,
                   code="idempotency_key_reused")
    _job, model_id = insert_model(api, "alice", ds["id"])
    hs = plain | {"Idempotency-Key": "s-1"}
    c = api.client.post(f"/api/v1/models/{model_id}/samples", json={"n_samples": 4}, headers=hs)
    d = api.client.post(f"/api/v1/models/{model_id}/samples", json={"n_samples": 4}, headers=hs)
    assert c.status_code == d.status_code == 202 and c.json()["id"] == d.json()["id"]
    assert len(api.sent) == 2
    # the same key on a different endpoint is a different request
    assert_problem(api.client.post("/api/v1/fits", json=body, headers=hs), 422, code="idempotency_key_reused")


def test_upload_replay(sapi: Any) -> None:
    h = sapi.key() | {"Idempotency-Key": "u-1"}
    content = npy(np.ones((3, 2)))
    a = sapi.client.post("/api/v1/datasets/upload", files={"file": ("a.npy", content)}, headers=h)
    b = sapi.client.post("/api/v1/datasets/upload", files={"file": ("a.npy", content)}, headers=h)
    assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
    c = sapi.client.post("/api/v1/datasets/upload", files={"file": ("a.npy", npy(np.zeros((3, 2))))}, headers=h)
    assert_problem(c, 422, code="idempotency_key_reused")


def test_concurrent_same_key_replays_or_conflicts(sapi: Any, monkeypatch: Any) -> None:
    """A request that loses the insert race on the unique (owner, key) gets the winner's resource,
    or 409 while no committed row is visible."""
    import service.datasets as ds_cases
    from service.errors import IdempotencyKeyInProgress

    h = sapi.key() | {"Idempotency-Key": "race"}
    first = sapi.client.post("/api/v1/datasets", json=SYNTH, headers=h).json()
    real = ds_cases.find_replay
    calls = {"n": 0}

    def blind_first(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return None if calls["n"] == 1 else real(*args, **kwargs)  # the loser did not see the row yet

    monkeypatch.setattr(ds_cases, "find_replay", blind_first)
    again = sapi.client.post("/api/v1/datasets", json=SYNTH, headers=h)
    assert again.status_code == 201 and again.json()["id"] == first["id"] and calls["n"] == 2

    def in_progress(*args: Any, **kwargs: Any) -> Any:
        return None

    monkeypatch.setattr(ds_cases, "find_replay", in_progress)
    r = sapi.client.post("/api/v1/datasets", json=SYNTH, headers=h)
    assert_problem(r, 409, code=IdempotencyKeyInProgress.code)
