"""The progress display of ``Jobs.wait(progress=True)``: a rich progress bar on a terminal, plain lines otherwise.

On a terminal (``stream.isatty()``) it is a live ``rich.progress.Progress`` bar: status, bar, percent, the
job's latest detail (step and loss, step and noise level, fits and chunks done) and the elapsed time. When
the stream is a file or a pipe (CI logs, ``2> log``) it prints plain lines instead, never ``\\r`` or cursor
codes: one when the status changes, when the progress passes another 10 %, or at most every
``interval_s`` while something changed, and the final state when closed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn


def describe_detail(detail: dict[str, Any] | None) -> str:
    """``step 120/500 loss 0.0123`` for fits, ``step 9/18 sigma 0.52`` for samples, ``fits 40/80 chunks 2/4``
    for sweeps."""
    if not detail:
        return ""
    parts = []
    if "step" in detail and "total_steps" in detail:
        parts.append(f"step {detail['step']}/{detail['total_steps']}")
    if detail.get("loss") is not None:
        parts.append(f"loss {float(detail['loss']):.4g}")
    if detail.get("converged"):  # a fit that ended early: every trial passed the convergence test
        parts.append("converged")
    if detail.get("sigma") is not None:  # sample jobs: the sampler's current noise level
        parts.append(f"sigma {float(detail['sigma']):.3g}")
    if "fits_done" in detail:
        parts.append(f"fits {detail['fits_done']}/{detail.get('fits_total', '?')}")
    if "chunks_done" in detail:
        parts.append(f"chunks {detail['chunks_done']}/{detail.get('chunks_total', '?')}")
    if not parts:
        parts = [f"{k} {v}" for k, v in list(detail.items())[:3]]
    return " ".join(parts)


def plain_line(data: dict[str, Any]) -> str:
    """``running     41.2%  step 825/2000 loss 0.8358``."""
    frac = float(data.get("progress") or 0.0)
    return f"{data.get('status', ''):<10} {100 * frac:5.1f}%  {describe_detail(data.get('progress_detail'))}".rstrip()


class JobProgress:
    """``update(job_json)`` for each event or poll; ``close()`` once. ``stream`` defaults to stderr."""

    def __init__(self, stream: TextIO | None = None, *, interval_s: float = 10.0) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._interactive = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval_s = interval_s
        self._last: dict[str, Any] | None = None
        self._printed: tuple[str, int, str] | None = None  # (status, decile, line) of the last plain line
        self._printed_at = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self._interactive:
            console = Console(file=self._stream, force_terminal=True)
            self._progress = Progress(TextColumn("{task.fields[status]:<10}"), BarColumn(), TaskProgressColumn(),
                                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console,
                                      transient=False)
            self._progress.start()
            self._task = self._progress.add_task("job", total=1.0, status="", detail="")

    def update(self, data: dict[str, Any]) -> None:
        self._last = data
        frac = min(max(float(data.get("progress") or 0.0), 0.0), 1.0)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=frac, status=str(data.get("status", "")),
                                  detail=describe_detail(data.get("progress_detail")))
            return
        status, decile, line = str(data.get("status", "")), int(frac * 10), plain_line(data)
        now = time.monotonic()
        if self._printed is None or status != self._printed[0] or decile != self._printed[1] or (
                line != self._printed[2] and now - self._printed_at >= self._interval_s):
            self._write(status, decile, line, now)

    def _write(self, status: str, decile: int, line: str, now: float) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()
        self._printed, self._printed_at = (status, decile, line), now

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            return
        if self._last is not None:
            line = plain_line(self._last)
            if self._printed is None or line != self._printed[2]:
                self._write(str(self._last.get("status", "")), 0, line, time.monotonic())
