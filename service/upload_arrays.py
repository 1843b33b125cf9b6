"""The array an upload becomes: its limits, the float64 .npy bytes it is written into, and the checks (service.uploads).

``Float64Builder`` appends parsed rows straight into the stored ``.npy`` bytes, so an upload costs the
array once; every check raises :class:`service.errors.InvalidUpload` naming the ``file`` field.
"""

import io
import time
from dataclasses import dataclass

import numpy as np

from service.errors import InvalidUpload

HEADER_RESERVE = 128  # bytes kept in front of the data for the .npy header (any 2-d float64 shape fits)
F8 = np.dtype("<f8")


@dataclass(frozen=True)
class Limits:
    """The deployment's bounds on an uploaded array (rows, columns, values)."""

    max_rows: int
    max_ambient_dim: int
    max_values: int

    @property
    def max_line_chars(self) -> int:
        """Longest CSV line / JSON row accepted: generous for ``max_ambient_dim`` numbers."""
        return 64 * self.max_ambient_dim + 4096


@dataclass(frozen=True)
class ParsedArray:
    """A parsed upload: the stored .npy bytes, its shape, the format read and the source dtype."""

    npy: bytearray  # the (N, n) float64 C-order array as .npy bytes: what is stored
    shape: tuple[int, int]
    format: str
    source_dtype: str


def invalid(reason: str) -> InvalidUpload:
    """The 422 of a bad upload, naming the ``file`` field."""
    return InvalidUpload.one("file", reason)


def check_shape(shape: tuple[int, ...], limits: Limits) -> None:
    """A non-empty 2-d shape within the limits."""
    if len(shape) != 2:
        raise invalid(f"expected a 2-d array of shape (N, n), got ndim={len(shape)} shape={list(shape)}")
    rows, cols = shape
    if rows < 1 or cols < 1:
        raise invalid(f"array is empty: shape={list(shape)}")
    check_cols(cols, limits)
    check_rows(rows, cols, limits)


def check_cols(cols: int, limits: Limits) -> None:
    """At most ``max_ambient_dim`` columns."""
    if cols > limits.max_ambient_dim:
        raise invalid(f"n={cols} columns exceeds the limit max_ambient_dim={limits.max_ambient_dim}")


def check_rows(rows: int, cols: int, limits: Limits) -> None:
    """At most ``max_rows`` rows and ``max_values`` values."""
    if rows > limits.max_rows:
        raise invalid(f"N={rows} rows exceeds the limit max_rows={limits.max_rows}")
    if rows * cols > limits.max_values:
        raise invalid(f"N*n={rows * cols} values exceeds the limit max_dataset_values={limits.max_values}")


def npy_header(rows: int, cols: int) -> bytes:
    """The .npy 1.0 header of a C-order (rows, cols) float64 array."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": F8.str, "fortran_order": False, "shape": (rows, cols)})
    return buf.getvalue()


def yield_gil() -> None:
    """Let the event loop's thread take the GIL between pieces of parsing (a 0 s sleep releases it)."""
    time.sleep(0)


def count_non_finite(block: np.ndarray) -> int:
    """How many NaN / inf values the block holds."""
    finite = np.isfinite(block)
    return 0 if finite.all() else int(finite.size - np.count_nonzero(finite))


class Float64Builder:
    """Rows of float64 appended to .npy bytes that grow in place (no second copy of the array)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.out = bytearray(HEADER_RESERVE)
        self.rows = 0
        self.cols = 0
        self.non_finite = 0

    def add(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=F8)
        check_rows(self.rows + block.shape[0], self.cols, self.limits)
        self.non_finite += count_non_finite(block)
        self.out += block.data.cast("B")  # the block's buffer, no copy
        self.rows += block.shape[0]
        yield_gil()

    def finish(self, fmt: str) -> ParsedArray:
        if self.rows == 0:
            raise invalid("file has no rows of numbers")
        check_shape((self.rows, self.cols), self.limits)
        if self.non_finite:
            raise invalid(f"array contains {self.non_finite} NaN or infinite values")
        self.out[:HEADER_RESERVE] = npy_header(self.rows, self.cols)  # same length or a short in-place move
        return ParsedArray(self.out, (self.rows, self.cols), fmt, "float64")
