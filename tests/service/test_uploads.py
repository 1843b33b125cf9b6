"""Uploads: .npy (no pickles), CSV and JSON; hostile files get a specific 4xx and nothing is stored."""

import io
import pickle
from typing import Any

import numpy as np
import pytest

from tests.service.test_datasets import assert_problem


def npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def upload(api: Any, content: bytes, filename: str = "x.npy", **data: str) -> Any:
    return api.client.post("/api/v1/datasets/upload", files={"file": (filename, content)}, data=data,
                           headers=api.key())


def test_good_npy_roundtrip(api: Any) -> None:
    X = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    r = upload(api, npy(X), name="mine")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["n_samples"], ds["ambient_dim"], ds["has_ground_truth"], ds["name"]) == (7, 5, False, "mine")
    got = np.load(io.BytesIO(api.client.get(ds["links"]["data"], headers=api.key("alice")).content))
    # a different key of the same owner sees it; stored as float64
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, X.astype(np.float64))


def test_good_csv_with_header_and_json(sapi: Any) -> None:
    r = upload(sapi, b"a,b,c\n1,2,3\n4,5,6.5\n", "x.csv")
    assert r.status_code == 201, r.text
    assert (r.json()["n_samples"], r.json()["ambient_dim"]) == (2, 3)
    r = upload(sapi, b"[[1, 2], [3, 4], [5, 6]]", "x.json")
    assert r.status_code == 201 and r.json()["n_samples"] == 3


@pytest.mark.parametrize(
    ("content", "filename", "reason"),
    [
        (npy(np.array([[1.0, np.nan], [0, 1]])), "x.npy", "NaN"),
        (npy(np.array([[1.0, np.inf], [0, 1]])), "x.npy", "NaN or infinite"),
        (npy(np.array([[1, "a"]], dtype=object), allow_pickle=True), "x.npy", "object dtype"),
        (pickle.dumps(np.ones((2, 2))), "x.npy", "magic"),
        (pickle.dumps(np.ones((2, 2))), "x.bin", "UTF-8"),
        (npy(np.ones((4, 3)))[:-5], "x.npy", "truncated"),
        (npy(np.ones(5)), "x.npy", "ndim=1"),
        (npy(np.ones((2, 2, 2))), "x.npy", "ndim=3"),
        (npy(np.ones((2, 2), dtype=np.complex128)), "x.npy", "real numeric"),
        (npy(np.ones((2, 2), dtype=bool)), "x.npy", "real numeric"),
        (npy(np.ones((0, 3))), "x.npy", "empty"),
        (b"1,2\n3\n", "x.csv", "rectangular"),
        (b"1,nan\n3,4\n", "x.csv", "NaN"),
        (b"", "x.csv", "empty"),
        (b"[[1, 2], [3]]", "x.json", "same length"),
        (b"[[1, \"a\"]]", "x.json", "numbers"),
    ],
)
def test_hostile_uploads_are_422(sapi: Any, content: bytes, filename: str, reason: str) -> None:
    body = assert_problem(upload(sapi, content, filename), 422, "file", "invalid_upload")
    assert reason in body["errors"][0]["reason"], body
    assert sapi.client.get("/api/v1/datasets", headers=sapi.key()).json()["items"] == []


def test_huge_shape_in_small_file(sapi: Any) -> None:
    header = npy(np.ones((2, 2)))
    forged = header.replace(b"(2, 2)", b"(99999, 9)")  # same header length, tiny payload
    body = assert_problem(upload(sapi, forged), 422, "file")
    assert "max_rows" in body["detail"] or "truncated" in body["detail"]
    forged = header.replace(b"(2, 2)", b"(9999, 9)")
    body = assert_problem(upload(sapi, forged), 422, "file")
    assert "truncated" in body["detail"]


def test_rows_over_limit_is_422(make_api: Any, sqlite_url: str) -> None:
    api = make_api(sqlite_url, max_rows=5)
    body = assert_problem(upload(api, npy(np.ones((6, 2)))), 422, "file")
    assert "max_rows=5" in body["detail"]


def test_oversize_upload_is_413(make_api: Any, sqlite_url: str) -> None:
    api = make_api(sqlite_url, max_upload_bytes=1000)
    r = upload(api, npy(np.ones((200, 10))))
    assert_problem(r, 413, code="payload_too_large")
    ok = upload(api, npy(np.ones((4, 4))))
    assert ok.status_code == 201
