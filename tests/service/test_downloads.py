"""Downloads stream the stored blob chunk by chunk (``substr`` reads), byte for byte, on both backends."""

import io
from typing import Any

import numpy as np
import pytest

from tests.service.test_datasets import assert_problem
from tests.service.test_uploads import npy, upload


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_download_streams_the_exact_bytes(api: Any, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    from service import blobs

    monkeypatch.setattr(blobs, "CHUNK_BYTES", chunk)
    X = np.random.default_rng(0).standard_normal((33, 5))
    ds = upload(api, npy(X)).json()
    r = api.client.get(ds["links"]["data"], headers=api.key())
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert int(r.headers["content-length"]) == len(r.content) == len(npy(X))
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), X)
    # an upload has no labels: 404, not an empty body
    assert_problem(api.client.get(f"/api/v1/datasets/{ds['id']}/labels.npy", headers=api.key()), 404)
    # another owner sees nothing
    assert_problem(api.client.get(ds["links"]["data"], headers=api.key("mallory")), 404)


def test_synthetic_artifacts_stream(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import blobs

    monkeypatch.setattr(blobs, "CHUNK_BYTES", 100)
    ds = api.client.post("/api/v1/datasets", json={"name": "s", "synthetic": {
        "ambient_dim": 8, "dims": [2, 3], "n_samples": 40, "seed": 1}}, headers=api.key()).json()
    labels = np.load(io.BytesIO(api.client.get(ds["links"]["labels"], headers=api.key()).content))
    assert labels.shape == (40,)
    bases = np.load(io.BytesIO(api.client.get(ds["links"]["bases"], headers=api.key()).content))
    assert sorted(bases.files) == ["U_0", "U_1"] and bases["U_1"].shape == (8, 3)
