"""Array and params codec: round trips, no pickles, readable validation errors."""

import io
import uuid

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from workers import codec


def test_npy_round_trip_from_tensor_and_array() -> None:
    X = np.arange(12.0).reshape(4, 3)
    assert np.array_equal(codec.npy_to_array(codec.array_to_npy(X)), X)
    back = codec.npy_to_array(codec.array_to_npy(torch.tensor(X, dtype=torch.float32), np.float64))
    assert back.dtype == np.float64 and np.array_equal(back, X)


def test_npy_refuses_pickles() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        codec.npy_to_array(buf.getvalue())


def test_bases_npz_round_trip_keeps_order() -> None:
    bases = [np.eye(5)[:, :d] for d in (1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3)]  # 12 > 10: U_10 after U_9
    back = codec.npz_to_bases(codec.bases_to_npz(bases))
    assert [b.shape for b in back] == [b.shape for b in bases]
    assert all(np.array_equal(a, b) for a, b in zip(back, bases, strict=True))


def test_jsonable() -> None:
    out = codec.jsonable({"a": np.float32(1.5), "b": torch.tensor([1.0, float("nan")]), "c": (np.int64(2),)})
    assert out == {"a": 1.5, "b": [1.0, None], "c": [2]}


def test_fit_params() -> None:
    ds = str(uuid.uuid4())
    p = codec.fit_params({"dataset_id": ds, "n_components": 2, "dims": [1, 2], "method": "diffusion",
                          "options": {"steps": 5}, "seed": 3})
    kw = codec.estimator_kwargs(p, torch.device("cpu"))
    assert kw["dims"] == [1, 2] and kw["steps"] == 5 and kw["seed"] == 3 and kw["method"] == "diffusion"
    assert "lr" not in kw  # unset options stay unset: the library's defaults are the spec's
    with pytest.raises(ValidationError, match="method"):
        codec.fit_params({"dataset_id": ds, "n_components": 1, "dims": [1], "method": "magic"})
    # The worker refuses what the API refuses: pca has no training steps.
    with pytest.raises(ValidationError, match="steps"):
        codec.fit_params({"dataset_id": ds, "n_components": 1, "dims": [1], "method": "pca", "options": {"steps": 5}})


def test_sample_params() -> None:
    p = codec.sample_params({"model_id": str(uuid.uuid4()), "n_samples": 6, "sampler": "ddim", "steps": 4, "seed": 1})
    assert codec.sample_kwargs(p) == {"n_samples": 6, "seed": 1, "sampler": "ddim", "steps": 4}


def test_centred_fit_keeps_its_mean_through_storage() -> None:
    """A center=True model's mean travels with its bases (.npz 'mean'), so samples stay around it."""
    import molrg

    d = molrg.make_molrg(12, [2], n_samples=200, seed=0)
    mu = torch.full((12,), 5.0, dtype=torch.float64)
    est = molrg.MoLRGDiffusion(1, [2], method="pca", center=True).fit(d.X + mu)
    blob = codec.bases_to_npz(est.bases_, est.mean_)
    mean = codec.npz_mean(blob)
    assert mean is not None and np.allclose(mean, 5.0, atol=0.5)
    back = molrg.MoLRGDiffusion.from_bases([torch.as_tensor(U) for U in codec.npz_to_bases(blob)], [1.0],
                                           mean=torch.as_tensor(mean))
    assert abs(float(back.sample(200, seed=0).mean()) - 5.0) < 0.5
    assert codec.npz_mean(codec.bases_to_npz(est.bases_)) is None
