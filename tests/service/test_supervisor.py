"""``molrg up``'s worker supervisor: a process that exits is started again (with backoff), and stop() ends all."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from service.supervisor import DataDirInUse, WorkerSupervisor, die_with_parent, hold_data_dir

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _wait(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_killed_process_is_started_again_and_stop_ends_everything() -> None:
    s = WorkerSupervisor([SLEEPER, SLEEPER], dict(os.environ), check_s=0.05)
    try:
        first, other = s.procs[0].pid, s.procs[1].pid
        os.killpg(first, signal.SIGKILL)  # its own session: the group is the process
        _wait(lambda: s.procs[0].pid != first and s.procs[0].poll() is None)
        assert s.restarts == 1 and s.procs[1].pid == other  # the other one untouched
    finally:
        s.stop(timeout=5)
    assert all(p.poll() is not None for p in s.procs)
    restarts = s.restarts
    time.sleep(0.2)
    assert s.restarts == restarts  # nothing restarts after stop()


def test_a_process_that_keeps_dying_backs_off() -> None:
    dies = [sys.executable, "-c", "raise SystemExit(3)"]
    s = WorkerSupervisor([dies], dict(os.environ), check_s=0.05)
    try:
        time.sleep(2.5)  # immediate deaths: restarts after ~2 s, then ~4 s ... not every 0.05 s
        assert 1 <= s.restarts <= 2 and s.failures[0] >= 1
    finally:
        s.stop(timeout=5)


def test_no_commands_is_a_no_op() -> None:
    s = WorkerSupervisor([], dict(os.environ), check_s=0.05)
    s.stop()
    assert s.procs == [] and s.restarts == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_started_process_dies_with_its_parent_however_it_dies() -> None:
    # a middle process starts SLEEPER the supervisor's way, prints its pid, then is SIGKILLed
    code = ("import subprocess, sys, time; from service.supervisor import die_with_parent; "
            f"p = subprocess.Popen(die_with_parent({SLEEPER!r}), start_new_session=True); "
            "print(p.pid, flush=True); time.sleep(600)")
    middle = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert middle.stdout is not None
    child = psutil.Process(int(middle.stdout.readline()))
    _wait(lambda: "time.sleep(600)" in " ".join(child.cmdline()))  # exec'd into the command itself
    middle.kill()
    middle.wait()
    _wait(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, timeout=5)
    assert die_with_parent(["x"])[-1] == "x"


def test_data_dir_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    code = ("import sys, time; from pathlib import Path; from service.supervisor import hold_data_dir; "
            "h = hold_data_dir(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirInUse) as info:
            hold_data_dir(tmp_path)
        assert info.value.pid == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    lock = hold_data_dir(tmp_path)  # a SIGKILLed holder leaves a pid file but no lock
    try:
        assert (tmp_path / "molrg-up.lock").read_text().strip() == str(os.getpid())
    finally:
        lock.close()
