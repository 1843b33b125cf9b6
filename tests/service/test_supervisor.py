"""``molrg up``'s worker supervisor: a process that exits is started again (with backoff), and stop() ends all."""

import os
import signal
import sys
import time

from service.supervisor import WorkerSupervisor

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
