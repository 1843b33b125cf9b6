"""Parse uploaded arrays (.npy, CSV, JSON) from a file while reading it: no pickles, limits checked early.

Each parser reads the spooled upload in bounded pieces and writes float64 values straight into the
``.npy`` bytes that are stored, so one upload costs about the stored array once (plus a few MB of
working buffers), and no single step holds the GIL for long:

* ``.npy``: the header is read first; dtype, shape, limits and the byte count are refused before any
  of the body is read; the body is read in blocks, converted and checked for NaN/inf block by block.
* CSV: lines are read one at a time (a line is bounded by ``max_ambient_dim``) and parsed in batches;
  a first row is a header only when none of its fields is a number; any other row that does not parse
  is refused with its line and column.
* JSON: a list of rows of numbers, scanned row by row from the bytes (never ``json.loads`` of the
  whole file); a malformed row is refused with its index.
"""

import codecs
import hashlib
import io
import re
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from service.errors import InvalidUpload
from service.upload_arrays import (
    F8,
    Float64Builder,
    Limits,
    ParsedArray,
    check_cols,
    check_rows,
    check_shape,
    count_non_finite,
    invalid,
    npy_header,
    yield_gil,
)

NPY_MAGIC = b"\x93NUMPY"
BLOCK_BYTES = 1024 * 1024  # working buffer of the .npy reader
BATCH_ROWS = 1024  # CSV/JSON rows parsed per numpy call ...
BATCH_CHARS = 1024 * 1024  # ... or fewer, when their text reaches this size


def file_digest(f: BinaryIO, prefix: bytes) -> str:
    """SHA-256 of ``prefix`` and the file's bytes, read in blocks (the idempotency digest of an upload)."""
    h = hashlib.sha256(prefix)
    f.seek(0)
    while chunk := f.read(BLOCK_BYTES):
        h.update(chunk)
        yield_gil()
    f.seek(0)
    return h.hexdigest()


# --- .npy -------------------------------------------------------------------------------------------

def parse_npy(f: BinaryIO, size: int, limits: Limits) -> ParsedArray:
    """A ``.npy`` file: header, dtype and byte count checked before the body is read; no pickles."""
    f.seek(0)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise invalid(f"unsupported .npy format version {version}")
    except InvalidUpload:
        raise
    except Exception as exc:  # numpy raises ValueError/SyntaxError/... on a malformed header
        raise invalid(f"malformed .npy header: {exc}") from None
    if dtype.hasobject:
        raise invalid("object dtype (pickled data) is not accepted; save a numeric array")
    if dtype.kind not in "fiu" or dtype.fields is not None or dtype.subdtype is not None:
        raise invalid(f"dtype {dtype} is not a real numeric type (float or integer)")
    check_shape(tuple(shape), limits)
    rows, cols = (int(v) for v in shape)
    expected = rows * cols * dtype.itemsize
    payload = size - f.tell()
    if payload != expected:
        raise invalid(f"truncated or padded .npy: header promises {expected} data bytes, file has {payload}")
    header = npy_header(rows, cols)
    out = bytearray(len(header) + rows * cols * F8.itemsize)
    out[: len(header)] = header
    X = np.frombuffer(out, dtype=F8, offset=len(header)).reshape(rows, cols)
    # Fortran order stores columns one after another: read it as the transpose, block by block.
    target = X.T if fortran else X
    lines, width = target.shape
    per_block = max(1, BLOCK_BYTES // max(1, width * dtype.itemsize))
    non_finite = 0
    for start in range(0, lines, per_block):
        n = min(per_block, lines - start)
        raw = f.read(n * width * dtype.itemsize)
        if len(raw) != n * width * dtype.itemsize:
            raise invalid("truncated .npy: the file ended before the data the header promises")
        target[start:start + n] = np.frombuffer(raw, dtype=dtype).reshape(n, width)
        non_finite += count_non_finite(target[start:start + n])
        yield_gil()
    if non_finite:
        raise invalid(f"array contains {non_finite} NaN or infinite values")
    return ParsedArray(out, (rows, cols), "npy", str(dtype))


# --- CSV --------------------------------------------------------------------------------------------

def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _loadtxt(lines: list[str], cols: int) -> np.ndarray | None:
    """The batch as an (len, cols) float64 array, or None when some line does not parse."""
    try:
        block = np.loadtxt(lines, delimiter=",", dtype=F8, ndmin=2, comments=None)
    except ValueError:
        return None
    return block if block.shape == (len(lines), cols) else None


def _row_problem(fields: list[str], cols: int) -> str:
    if len(fields) != cols:
        return f"has {len(fields)} fields, expected {cols} (the CSV is not a rectangular table of numbers)"
    for j, field in enumerate(fields, start=1):
        if not _is_number(field):
            return f"column {j}: {field.strip()[:40]!r} is not a number"
    return "is not a row of numbers"


def _text_lines(f: BinaryIO, limits: Limits) -> Iterator[tuple[int, str]]:
    """(line number, line) of the UTF-8 text, skipping blank and ``#`` lines; a line's length is bounded."""
    f.seek(0)
    reader = io.TextIOWrapper(f, encoding="utf-8-sig", errors="strict", newline=None)
    lineno = 0
    try:
        while True:
            try:
                line = reader.readline(limits.max_line_chars + 1)
            except UnicodeDecodeError:
                raise invalid(f"line {lineno + 1}: not UTF-8 text (upload a .npy file, a CSV or JSON)") from None
            if not line:
                return
            lineno += 1
            if len(line) > limits.max_line_chars and not line.endswith("\n"):
                raise invalid(f"line {lineno} is longer than {limits.max_line_chars} characters "
                           f"(max_ambient_dim={limits.max_ambient_dim} values)")
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                yield lineno, stripped
    finally:
        reader.detach()  # the upload's file stays open for its owner


def parse_csv(f: BinaryIO, limits: Limits) -> ParsedArray:
    """Comma-separated numbers, one sample per line; a first line of only non-numbers is a header."""
    out = Float64Builder(limits)
    batch: list[str] = []
    numbers: list[int] = []
    chars = 0

    def flush() -> None:
        nonlocal chars
        block = _loadtxt(batch, out.cols)
        if block is None:  # find the first offending line of the batch
            for lineno, line in zip(numbers, batch, strict=True):
                if _loadtxt([line], out.cols) is None:
                    raise invalid(f"line {lineno} {_row_problem(line.split(','), out.cols)}")
            raise invalid(f"lines {numbers[0]}-{numbers[-1]} are not a rectangular table of numbers")
        out.add(block)
        batch.clear()
        numbers.clear()
        chars = 0

    first = True
    for lineno, line in _text_lines(f, limits):
        if first:
            first = False
            fields = line.split(",")
            numeric = [_is_number(v) for v in fields]
            if not any(numeric):
                continue  # a header: no field is a number
            out.cols = len(fields)
            check_cols(out.cols, limits)
            if not all(numeric):
                j = numeric.index(False) + 1
                raise invalid(f"line {lineno}, column {j}: {fields[j - 1].strip()[:40]!r} is not a number "
                           "(a first line is a header only when none of its fields is a number)")
        elif out.cols == 0:
            out.cols = len(line.split(","))
            check_cols(out.cols, limits)
        batch.append(line)
        numbers.append(lineno)
        chars += len(line)
        if out.rows + len(batch) > limits.max_rows:
            check_rows(out.rows + len(batch), out.cols, limits)
        if len(batch) >= BATCH_ROWS or chars >= BATCH_CHARS:
            flush()
    if first:
        raise invalid("CSV file is empty")
    if batch:
        flush()
    if out.rows == 0:
        raise invalid("CSV file has a header but no rows")
    return out.finish("csv")


# --- JSON -------------------------------------------------------------------------------------------

_WS = re.compile(rb"\s*")
_ROW = re.compile(rb"\s*\[([^\[\]]*)\]\s*([,\]])")
_ROW_TEXT = re.compile(rb"[0-9eE+\-.,\s]*")
_SPACE = bytes.maketrans(b"\t\r\n", b"   ")


class _Bytes:
    """A window over the file, refilled in blocks; ``pos`` indexes ``buf``."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        f.seek(0)
        self.buf = b""
        self.pos = 0
        self.eof = False

    def fill(self) -> None:
        chunk = self.f.read(BLOCK_BYTES // 4)
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        self.eof = not chunk

    def skip_ws(self) -> bytes:
        """The next non-space byte (not consumed), b'' at the end of the file."""
        while True:
            m = _WS.match(self.buf, self.pos)
            assert m is not None
            self.pos = m.end()
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos:self.pos + 1]
            self.fill()


def parse_json(f: BinaryIO, limits: Limits) -> ParsedArray:
    """A JSON list of rows (a list of lists of numbers), scanned row by row."""
    src = _Bytes(f)
    src.fill()
    if src.buf.startswith(codecs.BOM_UTF8):
        src.pos = len(codecs.BOM_UTF8)
    if src.skip_ws() != b"[":
        raise invalid("JSON must be a list of rows (a list of lists of numbers)")
    src.pos += 1
    if src.skip_ws() == b"]":
        raise invalid("array is empty: the JSON list has no rows")
    out = Float64Builder(limits)
    batch: list[str] = []
    index = 0
    chars = 0

    def flush(first_index: int) -> None:
        nonlocal chars
        block = _loadtxt(batch, out.cols)
        if block is None:
            for i, text in enumerate(batch, start=first_index):
                if _loadtxt([text], out.cols) is None:
                    fields = text.split(",")
                    if len(fields) != out.cols:
                        raise invalid(f"JSON rows must all have the same length: row {i} has {len(fields)} values, "
                                   f"row 0 has {out.cols}")
                    raise invalid(f"JSON row {i} must hold only numbers")
        assert block is not None
        out.add(block)
        batch.clear()
        chars = 0

    while True:
        m = _ROW.match(src.buf, src.pos)
        if m is None:
            if not src.eof and len(src.buf) - src.pos <= limits.max_line_chars:
                src.fill()
                continue
            raise invalid(_json_problem(src.buf[src.pos:src.pos + limits.max_line_chars], index, limits))
        text = m.group(1)
        if _ROW_TEXT.fullmatch(text) is None:
            raise invalid(f"JSON row {index} must hold only numbers")
        row = text.translate(_SPACE).decode("ascii")
        if not row.strip():
            raise invalid(f"JSON row {index} is empty")
        if out.cols == 0:
            out.cols = len(row.split(","))
            check_cols(out.cols, limits)
        batch.append(row)
        chars += len(row)
        index += 1
        check_rows(index, out.cols, limits)
        src.pos = m.end()
        if len(batch) >= BATCH_ROWS or chars >= BATCH_CHARS:
            flush(index - len(batch))
        if m.group(2) == b"]":
            break
    if src.skip_ws():
        raise invalid("unexpected data after the JSON list of rows")
    if batch:
        flush(index - len(batch))
    return out.finish("json")


def _json_problem(window: bytes, index: int, limits: Limits) -> str:
    head = window.lstrip()
    if not head:
        return f"invalid JSON: the file ends inside the list (after row {index - 1})"
    if not head.startswith(b"["):
        return f"JSON must be a list of rows (a list of lists of numbers): row {index} is not a list"
    close = head.find(b"]")
    if close < 0:
        if len(head) >= limits.max_line_chars:
            return f"JSON row {index} is longer than {limits.max_line_chars} characters"
        return f"invalid JSON: row {index} is not closed"
    if b"[" in head[1:close] or _ROW_TEXT.fullmatch(head[1:close]) is None:
        return f"JSON row {index} must hold only numbers"
    if not head[close + 1:].strip():
        return f"invalid JSON: the file ends before the list of rows is closed (after row {index})"
    return f"invalid JSON after row {index}: expected ',' or ']'"


# --- dispatch ---------------------------------------------------------------------------------------

def parse_upload(f: BinaryIO, size: int, filename: str | None, limits: Limits) -> ParsedArray:
    """Pick the parser by content (``.npy`` magic) or file name; CSV otherwise."""
    name = (filename or "").lower()
    f.seek(0)
    head = f.read(64)
    f.seek(0)
    if head.startswith(NPY_MAGIC):
        return parse_npy(f, size, limits)
    if name.endswith(".npy"):
        raise invalid("file is named .npy but lacks the .npy magic bytes (truncated or not a .npy file)")
    if size == 0:
        raise invalid("file is empty")
    if name.endswith(".json") or head.lstrip(codecs.BOM_UTF8 + b" \t\r\n")[:1] == b"[":
        return parse_json(f, limits)
    return parse_csv(f, limits)
