"""The progress display: a rich bar on a terminal, plain lines (no carriage returns, no cursor codes) when
stderr is a file or a pipe; and ``molrg jobs watch`` with stderr piped prints only plain lines."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from molrg_client import Client
from molrg_client.progress import JobProgress, plain_line
from tests.e2e.conftest import Stack

FIT = [{"status": "queued", "progress": 0.0}, {"status": "running", "progress": 0.0}] + [
    {"status": "running", "progress": s / 200, "progress_detail": {"step": s, "total_steps": 200, "loss": 1 / (s + 1)}}
    for s in range(1, 201)] + [{"status": "succeeded", "progress": 1.0,
                                "progress_detail": {"step": 200, "total_steps": 200, "loss": 0.005}}]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    bar = JobProgress(out, interval_s=3600)
    for data in FIT:
        bar.update(data)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    # one line per status change and per 10 % passed, not one per event
    assert len(lines) <= 14, lines
    assert lines[0].startswith("queued") and lines[1].startswith("running")
    assert lines[-1] == "succeeded  100.0%  step 200/200 loss 0.005"
    assert any(line.startswith("running     50.0%  step 100/200 loss 0.0099") for line in lines), lines


def test_plain_lines_repeat_after_the_interval_only_when_changed() -> None:
    out = io.StringIO()
    bar = JobProgress(out, interval_s=0.0)
    for _ in range(3):
        bar.update({"status": "running", "progress": 0.01, "progress_detail": {"step": 1, "total_steps": 100}})
    bar.update({"status": "running", "progress": 0.02, "progress_detail": {"step": 2, "total_steps": 100}})
    bar.close()
    assert out.getvalue().splitlines() == ["running      1.0%  step 1/100", "running      2.0%  step 2/100"]


def test_rich_bar_on_a_terminal() -> None:
    out = Tty()
    bar = JobProgress(out)
    for data in FIT:
        bar.update(data)
    bar.close()
    text = out.getvalue()
    assert "\x1b[" in text  # drawn in place with cursor/erase codes, not appended lines
    assert "succeeded" in text and "100%" in text and "step 200/200 loss 0.005" in text
    assert "━" in text  # rich's bar
    assert plain_line(FIT[-1]) not in text  # the plain-line form is for logs only


@pytest.mark.e2e
def test_jobs_watch_prints_plain_lines_to_a_pipe(client: Client, embedded_stack: Stack, api_key: str) -> None:
    ds = client.datasets.create_synthetic(ambient_dim=16, dims=[2], n_samples=40, seed=1)
    job = client.fits.create(ds, 1, [2], method="diffusion", options={"steps": 300})
    exe = Path(sys.executable).parent / "molrg"
    proc = subprocess.run([str(exe), "jobs", "watch", job.id, "--url", embedded_stack.url, "--api-key", api_key],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and lines[-1].startswith("succeeded  100.0%"), proc.stderr
    assert all(line.split()[0] in ("queued", "running", "succeeded") for line in lines), proc.stderr
    assert f"job {job.id}" in proc.stdout and "succeeded" in proc.stdout
