"""The supervisor of `manage.py up`: restarts with backoff, gives up on a crash loop, keeps
the others serving, and says so in one line each."""

import sys
import threading
import time

import pytest

from pipelines_ui.supervisor import Child, Supervisor

pytestmark = pytest.mark.timeout(90)

CRASHES = "print('plain line'); print('ERROR boom'); raise SystemExit(3)"
SERVES = "import time; print('WARNING serving', flush=True); time.sleep(600)"


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
