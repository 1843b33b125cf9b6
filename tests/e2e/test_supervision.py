"""``molrg up`` keeps its workers: the Celery worker's main process SIGKILLed while the API runs is
started again, and jobs submitted afterwards still succeed (embedded default)."""

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import _start

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _worker_mains(up_pid: int) -> list[psutil.Process]:
    """The live Celery worker main processes of a ``molrg up`` (a killed one is a zombie until reaped)."""
    mains = []
    for p in psutil.Process(up_pid).children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "workers.celery_app" in " ".join(p.cmdline()):
                mains.append(p)
        except psutil.Error:
            continue
    return mains


def test_killed_worker_is_restarted_and_jobs_still_run(tmp_path: Path) -> None:
    gen = _start(tmp_path, "embedded", {})
    stack = next(gen)
    try:
        ds = stack.client.post("/api/v1/datasets", json={"name": "s", "synthetic": {
            "ambient_dim": 16, "dims": [3], "n_samples": 12, "seed": 0}}).raise_for_status().json()
        fit = {"dataset_id": ds["id"], "n_components": 1, "dims": [3], "method": "pca"}
        first = stack.client.post("/api/v1/fits", json=fit).raise_for_status().json()
        assert stack.wait_job(first["id"], timeout=60)["status"] == "succeeded"
        [worker] = _worker_mains(stack.proc.pid)
        os.killpg(worker.pid, signal.SIGKILL)  # the main process, its pool child and beat
        deadline = time.monotonic() + 30
        while not (mains := [p for p in _worker_mains(stack.proc.pid) if p.pid != worker.pid]):
            assert time.monotonic() < deadline, "no new worker process"
            time.sleep(0.2)
        job = stack.client.post("/api/v1/fits", json={**fit, "seed": 1}).raise_for_status().json()
        assert stack.wait_job(job["id"], timeout=90)["status"] == "succeeded"
        assert "starting it again" in (tmp_path / "molrg-up.log").read_text(errors="replace")
        assert len(mains) == 1
    finally:
        gen.close()
