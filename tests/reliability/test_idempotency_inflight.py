"""Idempotency-Key while the first request is still being processed: the second gets 409
``idempotency_key_in_progress`` at once (it does not wait, and nothing is created twice); once the
first has finished, the same key and body replay the original resource."""

import threading
from typing import Any

import httpx
import pytest

from tests.service.factories import SYNTH, make_dataset


def _blocking(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> tuple[threading.Event, threading.Event]:
    """Make ``module.name`` wait (inside the first request's transaction) until released."""
    entered, release = threading.Event(), threading.Event()
    real = getattr(module, name)

    def slow(*args: Any, **kwargs: Any) -> Any:
        if not entered.is_set():
            entered.set()
            assert release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, slow)
    return entered, release


def _in_flight(api: Any, path: str, body: dict[str, Any], headers: dict[str, str],
               entered: threading.Event, release: threading.Event) -> tuple[httpx.Response, httpx.Response]:
    first: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: first.append(api.client.post(path, json=body, headers=headers)))
    thread.start()
    try:
        assert entered.wait(20), "the first request never reached the slow step"
        second = api.client.post(path, json=body, headers=headers)
    finally:
        release.set()
        thread.join(30)
    return first[0], second


def test_dataset_same_key_in_flight_is_409(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import service.datasets as cases

    h = api.key() | {"Idempotency-Key": "inflight-ds"}
    entered, release = _blocking(monkeypatch, cases, "validate_synthetic")
    first, second = _in_flight(api, "/api/v1/datasets", SYNTH, h, entered, release)
    assert first.status_code == 201, first.text
    assert second.status_code == 409 and second.json()["code"] == "idempotency_key_in_progress", second.text
    assert second.headers["content-type"].startswith("application/problem+json")
    again = api.client.post("/api/v1/datasets", json=SYNTH, headers=h)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.client.get("/api/v1/datasets", headers=h).json()["items"]) == 1
    # another owner's identical key is not blocked by it, and a different key is independent
    other = api.client.post("/api/v1/datasets", json=SYNTH, headers=api.key("bob") | {"Idempotency-Key": "inflight-ds"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_fit_same_key_in_flight_is_409_and_published_once(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import service.jobs as cases

    plain = api.key()
    ds = make_dataset(api, plain)
    h = plain | {"Idempotency-Key": "inflight-fit"}
    body = {"dataset_id": ds["id"], "n_components": 2, "dims": [2, 3], "method": "subspace_clustering"}
    entered, release = _blocking(monkeypatch, cases, "validate_fit")
    first, second = _in_flight(api, "/api/v1/fits", body, h, entered, release)
    assert first.status_code == 202, first.text
    assert second.status_code == 409 and second.json()["code"] == "idempotency_key_in_progress", second.text
    again = api.client.post("/api/v1/fits", json=body, headers=h)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert len(api.sent) == 1
    # a request without a key is never blocked
    assert api.client.post("/api/v1/fits", json=body, headers=plain).status_code == 202
