"""Every value that reaches a store or a query fits it, on both backends; error lists stay small."""

import json
from typing import Any

import pytest

from tests.service.test_datasets import assert_problem

SYNTH = {"ambient_dim": 8, "dims": [2], "n_samples": 5}


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "a\u0000b", "synthetic": SYNTH}, "name"),
    ({"name": "x", "synthetic": {**SYNTH, "orthogonal": True}, "extra\u0000": 1}, "extra\\u0000"),
    ({"name": "x", "synthetic": {**SYNTH, "weights": ["\u0000"]}}, "synthetic.weights[0]"),
])
def test_nul_in_json_text_is_422_naming_the_field(api: Any, body: dict[str, Any], field: str) -> None:
    r = api.client.post("/api/v1/datasets", json=body, headers=api.key())
    problem = assert_problem(r, 422, field, "validation_error")
    assert "NUL" in problem["errors"][0]["reason"]
    assert api.client.get("/api/v1/datasets", headers=api.key()).json()["items"] == []


@pytest.mark.parametrize("path", ["/api/v1/datasets", "/api/v1/jobs", "/api/v1/models", "/api/v1/sample-sets"])
def test_nul_in_query_parameters_is_422(api: Any, path: str) -> None:
    for params in ({"cursor": "\u0000"}, {"status": "a\u0000"}, {"x\u0000": "1"}):
        r = api.client.get(path, params=params, headers=api.key())
        assert r.status_code in (404, 422), (path, params, r.status_code, r.text)
        if r.status_code == 422:
            assert "NUL" in r.json()["errors"][0]["reason"], r.text


def test_nul_in_idempotency_and_names_of_other_posts(api: Any) -> None:
    ds = api.client.post("/api/v1/datasets", json={"name": "ok", "synthetic": SYNTH}, headers=api.key()).json()
    r = api.client.post("/api/v1/fits", json={"dataset_id": ds["id"], "n_components": 1, "dims": [2],
                                              "method": "p\u0000ca"}, headers=api.key())
    assert_problem(r, 422, "method")


def test_json_without_nul_passes_through_unchanged(api: Any) -> None:
    raw = json.dumps({"name": "back\\slash \\u0000 literal", "synthetic": SYNTH}).encode()
    assert b"\\\\u0000" in raw  # an escaped backslash then 'u0000': not a NUL
    r = api.client.post("/api/v1/datasets", content=raw, headers=api.key() | {"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "back\\slash \\u0000 literal"


def test_error_list_is_capped(sapi: Any) -> None:
    # thousands of invalid values in a small body: the answer lists the first few and the total
    body = {"ambient_dim": 8, "n_components": 1, "dims": ["a"] * 256, "samples": ["b"] * 1024, "trials": 3}
    r = sapi.client.post("/api/v1/sweeps", json=body, headers=sapi.key())
    problem = assert_problem(r, 422, code="validation_error")
    assert len(problem["errors"]) == 20 and problem["errors_total"] >= 256, problem["errors_total"]
    assert "more errors" in problem["detail"]
    assert len(r.content) < 10_000, len(r.content)


def test_long_file_name_fits_the_name_column(api: Any) -> None:
    # the default name is the file name; a name column holds 200 characters (PostgreSQL enforces it)
    filename = "x" * 300 + ".csv"
    r = api.client.post("/api/v1/datasets/upload", files={"file": (filename, b"1,2\n")}, headers=api.key())
    assert r.status_code == 201, r.text
    assert r.json()["name"] == filename[:200] and r.json()["spec"]["filename"] == filename
