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


def _stored(api: Any, r: Any) -> np.ndarray:
    assert r.status_code == 201, r.text
    return np.load(io.BytesIO(api.client.get(r.json()["links"]["data"], headers=api.key()).content))


@pytest.mark.parametrize("X", [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    np.arange(12, dtype=">f8").reshape(4, 3),
    np.arange(12, dtype=np.int16).reshape(6, 2),
    np.arange(12, dtype=np.uint64).reshape(2, 6),
])
def test_npy_dtypes_and_orders_are_stored_as_float64(sapi: Any, X: np.ndarray) -> None:
    got = _stored(sapi, upload(sapi, npy(X)))
    assert got.dtype == np.float64 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, X.astype(np.float64))


def test_npy_over_several_read_blocks(sapi: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import uploads

    monkeypatch.setattr(uploads, "BLOCK_BYTES", 64)  # 2 rows of 4 float64 per block
    X = np.random.default_rng(1).standard_normal((9, 4)).astype(np.float32)
    np.testing.assert_array_equal(_stored(sapi, upload(sapi, npy(X))), X.astype(np.float64))
    bad = X.copy()
    bad[7, 1] = np.nan
    assert "1 NaN" in assert_problem(upload(sapi, npy(bad)), 422, "file")["detail"]


def test_csv_header_only_when_no_field_is_a_number(sapi: Any) -> None:
    np.testing.assert_array_equal(_stored(sapi, upload(sapi, b"x,y,z\n1,2,3\n", "a.csv")), [[1, 2, 3]])
    # `1,,3` used to be taken as a header and dropped silently
    body = assert_problem(upload(sapi, b"1,,3\n4,5,6\n", "a.csv"), 422, "file", "invalid_upload")
    assert "line 1, column 2" in body["detail"], body
    body = assert_problem(upload(sapi, b"x,2,z\n1,2,3\n", "a.csv"), 422, "file")
    assert "line 1, column 1" in body["detail"], body
    np.testing.assert_array_equal(_stored(sapi, upload(sapi, b"# comment\n\n1,2\r\n3,4\n", "a.csv")),
                                  [[1, 2], [3, 4]])


@pytest.mark.parametrize(("content", "where"), [
    (b"a,b\n1,2\n3,4\n5,x\n", "line 4 column 2: 'x' is not a number"),
    (b"1,2\n3,4\n5,\n", "line 3 column 2: '' is not a number"),
    (b"1,2\n\n# c\n3,4,5\n", "line 4 has 3 fields, expected 2"),
    (b"1,2\n3,4\x005\n", "line 2 column 2"),
])
def test_csv_bad_row_names_its_line_and_column(sapi: Any, content: bytes, where: str) -> None:
    body = assert_problem(upload(sapi, content, "a.csv"), 422, "file")
    assert where in body["detail"], body


def test_csv_bad_row_in_a_later_batch(sapi: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import uploads

    monkeypatch.setattr(uploads, "BATCH_ROWS", 3)
    good = b"".join(b"%d,%d\n" % (i, i + 1) for i in range(10))
    assert _stored(sapi, upload(sapi, good, "a.csv")).shape == (10, 2)
    body = assert_problem(upload(sapi, good + b"1,2\n1,oops\n" + good, "a.csv"), 422, "file")
    assert "line 12 column 2: 'oops'" in body["detail"], body


def test_csv_line_longer_than_any_row_is_422(make_api: Any, sqlite_url: str) -> None:
    api = make_api(sqlite_url, max_ambient_dim=4)
    body = assert_problem(upload(api, b"1," * 5000 + b"1\n", "a.csv"), 422, "file")
    assert "longer than" in body["detail"]


@pytest.mark.parametrize(("content", "reason"), [
    (b"[]", "empty"),
    (b"[[]]", "row 0 is empty"),
    (b"[[1, 2], [3, [4]]]", "row 1 must hold only numbers"),
    (b"[[1, 2], [3, null]]", "row 1 must hold only numbers"),
    (b"[[1, 2], [3, 4]", "ends before the list of rows is closed"),
    (b"[[1, 2], [3, 4", "row 1 is not closed"),
    (b"[[1, 2], [3, 4]] x", "after the JSON list"),
    (b"[[1, 2]; [3, 4]]", "expected ','"),
    (b"[1, 2]", "not a list"),
    (b"{\"a\": [[1]]}", "list of rows"),
    (b"[[1, 1e999]]", "infinite"),
])
def test_json_malformed_rows_are_422(sapi: Any, content: bytes, reason: str) -> None:
    body = assert_problem(upload(sapi, content, "a.json"), 422, "file")
    assert reason in body["detail"], body


def test_json_rows_across_read_blocks(sapi: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import uploads

    monkeypatch.setattr(uploads, "BLOCK_BYTES", 40)  # 10-byte reads: rows split between reads
    monkeypatch.setattr(uploads, "BATCH_ROWS", 2)
    X = np.arange(21, dtype=np.float64).reshape(7, 3) / 4
    text = ("\ufeff[\n" + ",\n".join("  [" + ", ".join(repr(float(v)) for v in row) + "]" for row in X) + "\n]\n").encode()
    np.testing.assert_array_equal(_stored(sapi, upload(sapi, text, "a.json")), X)


def _raw_multipart(filename: bytes, content: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart body written by hand: httpx would percent-encode a NUL in the file name."""
    body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename + b"\"\r\n"
            b"Content-Type: text/csv\r\n\r\n" + content + b"\r\n--B--\r\n")
    return body, {"Content-Type": "multipart/form-data; boundary=B"}


def test_nul_in_upload_form_fields_is_422(api: Any) -> None:
    body = assert_problem(upload(api, b"1,2\n", "x.csv", name="a\x00b"), 422, "name", "validation_error")
    assert "NUL" in body["errors"][0]["reason"]
    raw, headers = _raw_multipart(b"x\x00.csv", b"1,2\n")
    r = api.client.post("/api/v1/datasets/upload", content=raw, headers=headers | api.key())
    assert_problem(r, 422, "file.filename", "validation_error")
    assert api.client.get("/api/v1/datasets", headers=api.key()).json()["items"] == []
