"""``molrg up`` keeps its workers: the Celery worker's main process SIGKILLed while the API runs is
started again, and jobs submitted afterwards still succeed (embedded default). And it owns them: a
SIGKILLed ``molrg up`` leaves no process behind, and a second one on a served data dir refuses to start."""

import os
import signal
import subprocess
import sys
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
            cmd = " ".join(p.cmdline())
            if p.status() != psutil.STATUS_ZOMBIE and "workers.celery_app worker" in cmd:
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


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.parametrize("api_workers", [1, 2])
def test_sigkilled_up_leaves_no_process_and_frees_its_data_dir(tmp_path: Path, api_workers: int) -> None:
    gen = _start(tmp_path, "embedded", {"MOLRG_API_WORKERS": str(api_workers)})
    stack = next(gen)
    try:
        up = psutil.Process(stack.proc.pid)
        deadline = time.monotonic() + 60
        while True:  # the worker, its prefork pool child and the beat process (and uvicorn's API processes)
            tree = up.children(recursive=True)
            cmds = [" ".join(p.cmdline()) for p in _alive(tree)]
            api = sum("multiprocessing" in c for c in cmds)
            if (sum("celery_app worker" in c for c in cmds) >= 2 and any("celery_app beat" in c for c in cmds)
                    and api >= (api_workers if api_workers > 1 else 0)):
                break
            assert time.monotonic() < deadline, cmds
            time.sleep(0.3)
        os.kill(up.pid, signal.SIGKILL)  # the process only, not its group: nothing gets a chance to clean up
        stack.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while left := _alive(tree):
            assert time.monotonic() < deadline, [(p.pid, p.cmdline()) for p in left]
            time.sleep(0.1)
    finally:
        try:
            gen.close()
        except ProcessLookupError:
            pass
    # the kernel dropped the data dir's lock with the process: a new `molrg up` starts on it
    again = _start(tmp_path, "embedded", {})
    stack = next(again)
    try:
        assert stack.client.get("/api/v1/datasets").status_code == 200
    finally:
        again.close()


def test_second_up_on_a_served_data_dir_refuses_and_names_the_holder(tmp_path: Path) -> None:
    gen = _start(tmp_path, "embedded", {})
    stack = next(gen)
    try:
        exe = str(Path(sys.executable).parent / "molrg")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
        second = subprocess.run([exe, "up", "--port", "1", "--data-dir", str(tmp_path)], env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "already being served" in second.stderr and f"pid {stack.proc.pid}" in second.stderr, second.stderr
        assert stack.client.get("/api/v1/datasets").status_code == 200  # the first one is untouched
        assert len(_worker_mains(stack.proc.pid)) == 1
    finally:
        gen.close()
