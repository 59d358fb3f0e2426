"""The step's supervisor (runner.step_launch): a step never outlives its worker's lease.

A stand-in worker runs execute() in its own process, so that it can be killed or stopped as a
real one is; the step writes its pid and its grandchild's to a file and then works in silence.
Each case runs in each launch mode: a step spawned as its own command, and one forked from a
template interpreter.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from runner import step_launch
from runner.executor import supervise
from tests.unit.runner.test_executor import each_launch_mode, make_job, run, wait_gone

SILENT_WITH_A_GRANDCHILD = """
    import os, pathlib, signal, subprocess, time

    def note_sigterm(number, frame):  # then end by it, as a step that does not resist it
        pathlib.Path(os.environ["MARK"] + ".term").write_text("")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, note_sigterm)
    child = subprocess.Popen(["sleep", "300"])
    pathlib.Path(os.environ["MARK"]).write_text(f"{os.getpid()} {child.pid}")
    time.sleep(300)
"""

WORKER = """
import json, math, sys, time
from pathlib import Path
from runner.executor import execute

job, work, lease_s, launch_mode = (json.loads(sys.argv[1]), Path(sys.argv[2]),
                                   float(sys.argv[3]), sys.argv[4])

class Sink:
    def log(self, *args): pass
    def metric(self, *args): pass

# Renewed while this process runs, as a worker in contact does: the lease runs out only once
# it is stopped, however long the step took to start.
execute(job, Sink(), workdir_root=work, contact_until=lambda: time.monotonic() + lease_s,
        launch_mode=launch_mode)
"""


class Worker:
    """A process that runs one step, renewing its lease of `lease_s` as a compute worker
    would."""

    def __init__(self, tmp_path: Path, launch_mode: str, lease_s: float = math.inf) -> None:
        self.mark = tmp_path / "mark"
        job = make_job(tmp_path, SILENT_WITH_A_GRANDCHILD, env={"MARK": str(self.mark)},
                       timeout_s=600)
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(job), str(tmp_path / "work"), str(lease_s),
             launch_mode], cwd=Path(__file__).resolve().parents[3])
        deadline = time.monotonic() + 60
        while not self.mark.exists() or not self.mark.read_text():
            assert time.monotonic() < deadline and self.process.poll() is None
            time.sleep(0.05)
        self.step, self.grandchild = map(int, self.mark.read_text().split())
        self.supervisor = psutil.Process(self.step).ppid()

    def step_processes_gone(self, within_s: float) -> bool:
        return all(wait_gone(pid, within_s) for pid in (self.step, self.grandchild))

    def end(self) -> None:
        for pid in (self.grandchild, self.step, self.process.pid):
            _kill(pid, signal.SIGKILL)
        _kill(self.process.pid, signal.SIGCONT)
        self.process.wait(10)


def _kill(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


@pytest.fixture
def worker_of(tmp_path: Path):
    started: list[Worker] = []

    def start(launch_mode: str, **kwargs: Any) -> Worker:
        started.append(Worker(tmp_path, launch_mode, **kwargs))
        return started[-1]

    yield start
    for worker in started:
        worker.end()


@each_launch_mode
def test_a_killed_worker_takes_its_steps_whole_group_at_once(worker_of, launch_mode) -> None:
    worker = worker_of(launch_mode)
    worker.process.kill()
    assert worker.step_processes_gone(within_s=1.0)
    assert wait_gone(worker.supervisor, 1.0)


@each_launch_mode
def test_a_stopped_worker_cannot_keep_its_step_past_its_lease(worker_of, launch_mode) -> None:
    worker = worker_of(launch_mode, lease_s=3.0)
    worker.process.send_signal(signal.SIGSTOP)
    assert worker.step_processes_gone(within_s=3.0 + step_launch.STOPPED_WITHIN_S)
    # SIGTERM comes first, and this step does not resist it.
    assert Path(f"{worker.mark}.term").exists()


def test_the_supervisor_kills_a_step_that_resists_sigterm_after_the_grace(tmp_path: Path) -> None:
    mark = tmp_path / "ignoring"
    job = make_job(tmp_path, """
        import os, pathlib, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path(os.environ["MARK"]).write_text("")
        time.sleep(60)
    """, env={"MARK": str(mark)})
    lease = LeaseFromMark(mark, lease_s=0.5)
    result, _ = run(tmp_path, job, contact_until=lease)
    assert (result.reason, result.message) == ("signal", "killed by signal 9")
    after_lease = time.monotonic() - lease.ends_at
    assert after_lease >= step_launch.TERM_AFTER_LEASE_S + step_launch.KILL_GRACE_S


class LeaseFromMark:
    """A lease renewed until the step has written `mark`, then left to end `lease_s` later:
    the step's start-up, however slow, never eats into it."""

    def __init__(self, mark: Path, lease_s: float) -> None:
        self.mark, self.lease_s = mark, lease_s
        self.ends_at = math.inf

    def __call__(self) -> float:
        if self.ends_at == math.inf and self.mark.exists():
            self.ends_at = time.monotonic() + self.lease_s
        return min(self.ends_at, time.monotonic() + 60)


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the parent death signal is Linux's")


@LINUX_ONLY
def test_a_step_whose_supervisor_dies_dies_with_it(worker_of) -> None:
    worker = worker_of("fork")
    worker.process.send_signal(signal.SIGSTOP)  # the worker cannot stop the step itself
    os.kill(worker.supervisor, signal.SIGKILL)
    assert wait_gone(worker.step, 1.0)


@LINUX_ONLY
def test_a_supervisor_whose_template_dies_stops_the_steps_group(worker_of) -> None:
    worker = worker_of("fork")
    worker.process.send_signal(signal.SIGSTOP)  # the worker cannot stop the step itself
    os.kill(psutil.Process(worker.supervisor).ppid(), signal.SIGKILL)
    assert worker.step_processes_gone(within_s=1.0)


@each_launch_mode
def test_a_renewed_lease_keeps_the_step_running_and_it_ends_as_it_would(
        tmp_path: Path, launch_mode: str) -> None:
    renewals = []

    def contact_until() -> float:
        renewals.append(time.monotonic())
        return time.monotonic() + 1.0  # each renewal a short lease: the step outlives several

    job = make_job(tmp_path, "import time; time.sleep(4); raise SystemExit(3)")
    result, _ = run(tmp_path, job, contact_until=contact_until, launch_mode=launch_mode)
    assert (result.reason, result.exit_code) == ("exit", 3)
    assert len(renewals) >= 4


SIGNALS_ITS_OWN_GROUP = """
    import os, signal, time
    number = signal.{name}
    signal.signal(number, signal.SIG_IGN)
    os.killpg(0, number)  # as a step does to stop helpers it started
    time.sleep({sleep_s})
"""


@pytest.mark.parametrize("name", ["SIGHUP", "SIGTERM"])
@each_launch_mode
def test_a_step_that_signals_its_own_group_ends_as_it_would(
        tmp_path: Path, launch_mode: str, name: str) -> None:
    # Long enough for a kill that the signal would have set off to land first.
    sleep_s = step_launch.TERM_AFTER_LEASE_S + step_launch.KILL_GRACE_S + 1.0
    job = make_job(tmp_path, SIGNALS_ITS_OWN_GROUP.format(name=name, sleep_s=sleep_s))
    result, _ = run(tmp_path, job, contact_until=lambda: time.monotonic() + 60,
                    launch_mode=launch_mode)
    assert result.status == "succeeded", result.message


@each_launch_mode
def test_a_lease_far_off_is_waited_for_like_any_other(tmp_path: Path, launch_mode: str) -> None:
    job = make_job(tmp_path, "import time; time.sleep(0.5)")
    result, sink = run(tmp_path, job, contact_until=lambda: time.monotonic() + 1e10,
                       launch_mode=launch_mode)
    assert result.status == "succeeded", result.message


def test_a_lease_renewed_after_its_supervisor_ended_is_no_error() -> None:
    until = [1.0]
    with supervise.Lease(lambda: until[0]) as lease:
        lease.handed_over()  # the last read end, as the supervisor's is when it exits
        until[0] = 2.0
        lease.renew()


def test_a_command_that_cannot_be_executed_is_a_setup_error(tmp_path: Path) -> None:
    job = make_job(tmp_path, "", command=["no-such-command-here"])
    result, _ = run(tmp_path, job)
    assert (result.reason, result.message) == ("error", "command not found: no-such-command-here")
    (tmp_path / "plain.txt").write_text("")
    job = make_job(tmp_path, "", command=[str(tmp_path / "plain.txt")])
    result, _ = run(tmp_path, job)
    assert result.reason == "error" and "Permission denied" in result.message


@LINUX_ONLY
def test_the_parent_death_signal_is_asked_for_and_the_parent_checked() -> None:
    script = textwrap.dedent("""
        import ctypes, os, sys
        sys.path.insert(0, os.path.dirname(sys.argv[1]))
        import step_launch
        step_launch._prctl = step_launch.libc_prctl()
        alive = step_launch.die_with_parent(15, os.getppid())
        gone = step_launch.die_with_parent(10, os.getppid() + 1)
        asked = ctypes.c_int()
        ctypes.CDLL(None).prctl(2, ctypes.byref(asked))  # PR_GET_PDEATHSIG
        print(alive, gone, asked.value)
    """)
    out = subprocess.run([sys.executable, "-c", script, step_launch.__file__],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "10"]
