"""The supervisor of `manage.py up`: restarts with backoff, gives up on a crash loop, keeps
the others serving, and says so in one line each."""

import subprocess
import sys
import threading
import time

import psutil
import pytest

from pipelines_ui.supervisor import Child, Supervisor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]  # real backoff: 1+2+4+8 s

CRASHES = "print('plain line'); print('ERROR boom'); raise SystemExit(3)"
SERVES = "import time; print('WARNING serving', flush=True); time.sleep(600)"
ANNOUNCES = ("import time; print('INFO step isolation: landlock: steps confined', flush=True);"
             " time.sleep(600)")


def test_a_crash_loop_is_retried_with_backoff_then_left_stopped_while_others_serve(tmp_path):
    said: list[str] = []
    crashing = Child("crashing", [sys.executable, "-c", CRASHES], {})
    serving = Child("serving", [sys.executable, "-c", SERVES], {})
    supervisor = Supervisor([crashing, serving], tmp_path / "log", tmp_path, said.append)
    supervisor.start_all()
    serving_pid = serving.process.pid
    watching = threading.Thread(target=_watch_until_given_up, args=(supervisor, crashing))
    watching.start()
    watching.join()
    supervisor.stop_all()

    exits = [line for line in said if line.startswith("[crashing] exited")]
    assert [line.rsplit("restarting in ", 1)[-1] for line in exits[:4]] == \
        ["1 s", "2 s", "4 s", "8 s"]
    assert all("with code 3" in line and "last error: ERROR boom" in line for line in exits)
    assert len(exits) == 5 and "restarting" not in exits[4]
    assert any("left stopped" in line for line in said)
    assert said.count("[crashing] started (pid " + str(crashing.process.pid) + ")") == 1
    assert serving.process.pid == serving_pid and serving.restarts == 0
    assert "[serving] WARNING serving" in said
    assert "[serving] stopped" in said
    assert "plain line" not in " ".join(said)  # plain output stays in the log
    assert (tmp_path / "log" / "crashing.log").read_text().count("plain line") == 5


def _watch_until_given_up(supervisor: Supervisor, child: Child, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not child.given_up and time.monotonic() < deadline:
        supervisor.watch_once()
        time.sleep(0.05)


def test_a_child_that_fails_to_become_ready_is_restarted_not_the_supervisor(tmp_path):
    said: list[str] = []

    def never_ready(process):
        raise RuntimeError("the broker did not answer")

    child = Child("broker", [sys.executable, "-c", SERVES], {}, ready=never_ready)
    supervisor = Supervisor([child], tmp_path / "log", tmp_path, said.append)
    supervisor.start_all()
    first = child.process
    deadline = time.monotonic() + 20
    while child.restarts == 0 and time.monotonic() < deadline:
        supervisor.watch_once()
        time.sleep(0.05)
    supervisor.stop_all()

    assert first.returncode == -9  # its tree was killed when it failed its check
    assert said[0].startswith("[broker] exited with signal SIGKILL after 0 s; last error: "
                              "could not start: RuntimeError: the broker did not answer; "
                              "restarting in 1 s"), said
    assert child.restarts == 1 and child.process is not first


KILLED_SUPERVISOR = """
import sys, time
from pathlib import Path
from pipelines_ui.supervisor import Child, Supervisor
child = Child("serving", [sys.executable, "-c", "import time; time.sleep(600)"], {})
supervisor = Supervisor([child], Path(sys.argv[1]), Path(sys.argv[1]), print)
supervisor.start_all()
print("child", child.process.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_end_when_the_supervisor_is_killed(tmp_path):
    supervisor = subprocess.Popen([sys.executable, "-c", KILLED_SUPERVISOR, str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True)
    line = supervisor.stdout.readline()
    while not line.startswith("child"):
        line = supervisor.stdout.readline()
    child = psutil.Process(int(line.split()[1]))
    supervisor.kill()
    supervisor.wait()
    gone, _ = psutil.wait_procs([child], timeout=5)
    assert gone, "the child outlived its supervisor"


LEAVES_A_CHILD = ("import subprocess, sys; p = subprocess.Popen(['sleep', '300']); "
                  "print('left', p.pid, flush=True)")


def test_what_a_dead_child_left_running_goes_with_it(tmp_path):
    said: list[str] = []
    child = Child("control", [sys.executable, "-c", LEAVES_A_CHILD], {})
    supervisor = Supervisor([child], tmp_path / "log", tmp_path, said.append)
    supervisor.start_all()
    child.process.wait()
    child.reader.join(timeout=5)
    log = (tmp_path / "log" / "control.log").read_text()
    left = psutil.Process(int(log.split("left ")[1].split()[0]))
    supervisor.watch_once()
    supervisor.stop_all()

    gone, _ = psutil.wait_procs([left], timeout=5)
    assert gone, "a process of the dead child outlived it"


def test_the_step_isolation_a_worker_announces_is_shown_but_is_no_error(tmp_path):
    said: list[str] = []
    child = Child("compute", [sys.executable, "-c", ANNOUNCES], {})
    supervisor = Supervisor([child], tmp_path / "log", tmp_path, said.append)
    supervisor.start_all()
    try:
        deadline = time.monotonic() + 30
        while not any("step isolation" in line for line in said) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        supervisor.stop_all()
    assert "[compute] INFO step isolation: landlock: steps confined" in said
    assert child.last_error == ""
