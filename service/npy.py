"""``.npy`` / ``.npz`` bytes of the arrays the API stores (CONTRACTS.md)."""

import io
from typing import Any

import numpy as np


def npy_bytes(array: np.ndarray) -> bytes:
    """One array as ``.npy`` bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npz_bytes(bases: list[np.ndarray]) -> bytes:
    """Bases as ``.npz`` with arrays ``U_0 .. U_{K-1}`` (float64)."""
    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"U_{k}": np.asarray(U, dtype=np.float64) for k, U in enumerate(bases)}
    np.savez(buf, **arrays)
    return buf.getvalue()
