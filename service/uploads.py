"""Parse uploaded arrays (.npy, CSV, JSON) safely: no pickles, sizes checked before allocating."""

import io
import json
from dataclasses import dataclass

import numpy as np

from service.errors import InvalidUpload

NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_ambient_dim: int
    max_values: int


@dataclass(frozen=True)
class ParsedArray:
    X: np.ndarray  # (N, n) float64, finite
    format: str
    source_dtype: str


def _bad(reason: str) -> InvalidUpload:
    return InvalidUpload.one("file", reason)


def _check_shape(shape: tuple[int, ...], limits: Limits) -> None:
    if len(shape) != 2:
        raise _bad(f"expected a 2-d array of shape (N, n), got ndim={len(shape)} shape={list(shape)}")
    rows, cols = shape
    if rows < 1 or cols < 1:
        raise _bad(f"array is empty: shape={list(shape)}")
    if rows > limits.max_rows:
        raise _bad(f"N={rows} rows exceeds the limit max_rows={limits.max_rows}")
    if cols > limits.max_ambient_dim:
        raise _bad(f"n={cols} columns exceeds the limit max_ambient_dim={limits.max_ambient_dim}")
    if rows * cols > limits.max_values:
        raise _bad(f"N*n={rows * cols} values exceeds the limit max_dataset_values={limits.max_values}")


def _finite_float64(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).sum())
        raise _bad(f"array contains {bad} NaN or infinite values")
    return np.ascontiguousarray(X)


def parse_npy(data: bytes, limits: Limits) -> ParsedArray:
    """A ``.npy`` file, read with ``allow_pickle=False`` after checking header, dtype and byte count."""
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise _bad(f"unsupported .npy format version {version}")
    except InvalidUpload:
        raise
    except Exception as exc:  # numpy raises ValueError/SyntaxError/... on a malformed header
        raise _bad(f"malformed .npy header: {exc}") from None
    if dtype.hasobject:
        raise _bad("object dtype (pickled data) is not accepted; save a numeric array")
    if dtype.kind not in "fiu":
        raise _bad(f"dtype {dtype} is not a real numeric type (float or integer)")
    _check_shape(tuple(shape), limits)
    expected = int(np.prod(shape)) * dtype.itemsize
    payload = len(data) - buf.tell()
    if payload != expected:
        raise _bad(f"truncated or padded .npy: header promises {expected} data bytes, file has {payload}")
    try:
        X = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise _bad(f"unreadable .npy: {exc}") from None
    return ParsedArray(_finite_float64(X), "npy", str(dtype))


def _decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad("not a .npy file and not UTF-8 text (CSV or JSON)") from None


def parse_csv(data: bytes, limits: Limits) -> ParsedArray:
    """Comma-separated numbers, one sample per line; an optional non-numeric header line."""
    text = _decode_text(data)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise _bad("CSV file is empty")
    try:
        [float(v) for v in lines[0].split(",")]
    except ValueError:
        lines = lines[1:]  # a header row
        if not lines:
            raise _bad("CSV file has a header but no rows") from None
    cols = len(lines[0].split(","))
    _check_shape((len(lines), cols), limits)
    try:
        X = np.loadtxt(io.StringIO("\n".join(lines)), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise _bad(f"CSV is not a rectangular table of numbers: {exc}") from None
    return ParsedArray(_finite_float64(X), "csv", "float64")


def parse_json(data: bytes, limits: Limits) -> ParsedArray:
    """A JSON list of rows (list of lists of numbers)."""
    try:
        value = json.loads(_decode_text(data))
    except (ValueError, RecursionError):
        raise _bad("invalid JSON") from None
    if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
        raise _bad("JSON must be a list of rows (a list of lists of numbers)")
    _check_shape((len(value), len(value[0]) if value else 0), limits)
    try:
        X = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise _bad("JSON rows must all have the same length and hold only numbers") from None
    _check_shape(X.shape, limits)
    return ParsedArray(_finite_float64(X), "json", "float64")


def parse_upload(data: bytes, filename: str | None, limits: Limits) -> ParsedArray:
    """Pick the parser by content (``.npy`` magic) or file name; CSV otherwise."""
    name = (filename or "").lower()
    if data.startswith(NPY_MAGIC):
        return parse_npy(data, limits)
    if name.endswith(".npy"):
        raise _bad("file is named .npy but lacks the .npy magic bytes (truncated or not a .npy file)")
    if name.endswith(".json") or data.lstrip()[:1] == b"[":
        return parse_json(data, limits)
    return parse_csv(data, limits)
