"""The only converter between arrays and ``.npy``/``.npz`` bytes, and between job params and molrg calls."""

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pydantic import TypeAdapter

from molrg import spec

ArrayLike = np.ndarray | torch.Tensor


def to_numpy(x: ArrayLike) -> np.ndarray:
    """A CPU numpy array from a tensor or array (no copy when already numpy)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def array_to_npy(x: ArrayLike, dtype: Any = None) -> bytes:
    """Serialise one array as ``.npy`` bytes."""
    arr = to_numpy(x)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def npy_to_array(data: bytes) -> np.ndarray:
    """Parse ``.npy`` bytes (object arrays are refused)."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def bases_to_npz(bases: Sequence[ArrayLike], mean: ArrayLike | None = None) -> bytes:
    """Serialise K bases as ``.npz`` with arrays ``U_0..U_{K-1}`` (float64), and ``mean`` of a centred fit."""
    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"U_{k}": to_numpy(U).astype(np.float64) for k, U in enumerate(bases)}
    if mean is not None:
        arrays["mean"] = to_numpy(mean).astype(np.float64).reshape(-1)
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_to_bases(data: bytes) -> list[np.ndarray]:
    """Parse ``.npz`` bytes with ``U_0..U_{K-1}`` into a list ordered by k."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        keys = sorted((k for k in npz.files if k.startswith("U_")), key=lambda k: int(k[2:]))
        return [np.asarray(npz[k]) for k in keys]


def npz_mean(data: bytes) -> np.ndarray | None:
    """The ``mean`` of a centred fit's ``.npz`` (x = mean + U_k a), or None."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return np.asarray(npz["mean"]) if "mean" in npz.files else None


def to_tensor(x: np.ndarray, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A tensor on ``device`` from a numpy array."""
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy/torch scalars and arrays, nested dicts and lists; NaN/inf -> None."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def as_float(value: Any) -> float | None:
    """A finite float from a scalar, 0-d tensor or array, else None."""
    if value is None:
        return None
    try:
        out = float(to_numpy(value).reshape(-1)[0]) if isinstance(value, np.ndarray | torch.Tensor) else float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return out if math.isfinite(out) else None


FIT_ADAPTER: TypeAdapter[spec.FitVariant] = TypeAdapter(spec.FitSpec)


def fit_params(params: dict[str, Any]) -> spec.FitVariant:
    """The fit job's params parsed by the one declaration (raises pydantic's ValidationError naming the field)."""
    return FIT_ADAPTER.validate_python(params)


def estimator_kwargs(fit: spec.FitVariant, device: torch.device) -> dict[str, Any]:
    """Keyword arguments of ``molrg.MoLRGDiffusion``: the options the user gave (the rest are the spec's defaults)."""
    return {"n_components": fit.n_components, "dims": list(fit.dims), "method": fit.method, "seed": fit.seed,
            "device": device, **fit.options.model_dump(exclude_unset=True)}


def sample_params(params: dict[str, Any]) -> spec.SampleJob:
    """The sample job's params parsed by the one declaration."""
    return spec.SampleJob.model_validate(params)


def sample_kwargs(job: spec.SampleJob) -> dict[str, Any]:
    """Keyword arguments of ``MoLRGDiffusion.sample``."""
    return {"n_samples": job.n_samples, "seed": job.seed, "sampler": job.sampler, "steps": job.steps}
