"""Errors that say how to fix the request: JSON sent as another content type, an upload without the
multipart field ``file``, and an id of the wrong kind ("<id> is a fit job; its model is <model id>")."""

import json
import uuid
from typing import Any

import pytest

from db.enums import JobKind, JobStatus
from tests.service.factories import SYNTH, insert_model, insert_sample_set, make_dataset
from tests.service.test_datasets import assert_problem
from tests.service.test_delete import add_job, add_sweep

API = "/api/v1"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain",
                                          "multipart/form-data; boundary=x"])
def test_json_route_with_another_content_type_is_415_saying_which_header(sapi: Any, content_type: str) -> None:
    h = sapi.key() | {"Content-Type": content_type}
    r = sapi.client.post(f"{API}/datasets", content=json.dumps(SYNTH).encode(), headers=h)
    body = assert_problem(r, 415, "body", code="unsupported_media_type")
    assert "Content-Type: application/json" in body["detail"]
    assert f"got Content-Type: {content_type.split(';')[0]}" in body["detail"]
    assert sapi.client.get(f"{API}/datasets", headers=sapi.key()).json()["items"] == []


def test_curl_d_default_form_type_on_fits_and_sweeps(sapi: Any) -> None:
    """What ``curl -d '{...}'`` sends: the JSON text as application/x-www-form-urlencoded."""
    h = sapi.key() | {"Content-Type": "application/x-www-form-urlencoded"}
    for path in ("fits", "sweeps", f"models/{uuid.uuid4()}/samples"):
        body = assert_problem(sapi.client.post(f"{API}/{path}", content=b'{"a": 1}', headers=h), 415, code=None)
        assert body["code"] == "unsupported_media_type" and "-H 'Content-Type: application/json'" in body["detail"]


def test_json_content_type_still_validates_fields_and_missing_body_says_json(sapi: Any) -> None:
    h = sapi.key()
    r = sapi.client.post(f"{API}/datasets", json={"name": "x", "synthetic": {"ambient_dim": 12}}, headers=h)
    assert_problem(r, 422, "synthetic.dims", code="validation_error")
    r = sapi.client.post(f"{API}/datasets", headers=h | {"Content-Type": "application/json"})
    body = assert_problem(r, 422, "body")
    assert "JSON object body is required" in body["detail"] and "application/json" in body["detail"]
    ok = sapi.client.post(f"{API}/datasets", content=json.dumps(SYNTH).encode(),
                          headers=h | {"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(("kwargs", "got"), [
    ({"files": {"data": ("x.npy", b"1,2\n3,4\n")}}, "got fields: data"),
    ({"content": b"1,2\n3,4\n", "headers": {"Content-Type": "text/csv"}}, "got Content-Type: text/csv"),
    ({"json": [[1.0, 2.0]]}, "got Content-Type: application/json"),
])
def test_upload_without_file_field_says_send_it_as_multipart_file(sapi: Any, kwargs: dict[str, Any],
                                                                  got: str) -> None:
    headers = sapi.key() | kwargs.pop("headers", {})
    r = sapi.client.post(f"{API}/datasets/upload", headers=headers, **kwargs)
    body = assert_problem(r, 422, "file", code="validation_error")
    reason = next(e["reason"] for e in body["errors"] if e["field"] == "file")
    assert "multipart/form-data field `file`" in reason and "curl -F file=@data.npy" in reason
    assert got in reason, reason


def test_sample_from_a_job_id_names_its_model(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    job, model = insert_model(api, "alice", ds["id"])
    r = api.client.post(f"{API}/models/{job}/samples", json={"n_samples": 4}, headers=h)
    body = assert_problem(r, 404, code="not_found")
    assert f"{job} is a fit job (succeeded); its model is {model}" in body["detail"]
    running = add_job(api, "alice", JobKind.fit, JobStatus.running, {"dataset_id": ds["id"]})
    body = assert_problem(api.client.get(f"{API}/models/{running}", headers=h), 404)
    assert f"{running} is a fit job (running); it has no model yet" in body["detail"]
    # someone else's job id stays unknown: no hint, no leak
    body = assert_problem(api.client.post(f"{API}/models/{job}/samples", json={"n_samples": 4},
                                          headers=api.key("bob")), 404)
    assert body["detail"] == f"model {job} not found"


def test_other_wrong_kinds_say_what_the_id_is(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    job, model = insert_model(api, "alice", ds["id"])
    sample_set = insert_sample_set(api, "alice", model)
    sweep_job, sweep = add_sweep(api, "alice")
    cases = [
        (f"jobs/{model}", f"{model} is a model; its job is {job}"),
        (f"datasets/{model}", f"{model} is a model; its dataset is {ds['id']}"),
        (f"models/{sample_set}", f"{sample_set} is a sample set; its model is {model}"),
        (f"sweeps/{sweep_job}", f"{sweep_job} is a sweep job (succeeded); its sweep is {sweep}"),
        (f"jobs/{sweep}", f"{sweep} is a sweep; its job is {sweep_job}"),
        (f"sample-sets/{ds['id']}", f"{ds['id']} is a dataset"),
    ]
    for path, hint in cases:
        body = assert_problem(api.client.get(f"{API}/{path}", headers=h), 404, code="not_found")
        assert hint in body["detail"], (path, body["detail"])
    r = api.client.post(f"{API}/fits", json={"dataset_id": model, "n_components": 2, "dims": [2, 3],
                                             "method": "subspace_clustering"}, headers=h)
    assert f"its dataset is {ds['id']}" in r.json()["detail"], r.text
    unknown = uuid.uuid4()
    assert api.client.get(f"{API}/models/{unknown}", headers=h).json()["detail"] == f"model {unknown} not found"


def test_openapi_lists_415_on_the_json_routes_only(sapi: Any) -> None:
    paths = sapi.client.get("/openapi.json").json()["paths"]
    for path in ("/datasets", "/fits", "/sweeps", "/models/{model_id}/samples"):
        assert "415" in paths[API + path]["post"]["responses"], path
    assert "415" not in paths[API + "/datasets/upload"]["post"]["responses"]
    assert "415" not in paths[API + "/jobs/{job_id}"]["get"]["responses"]
