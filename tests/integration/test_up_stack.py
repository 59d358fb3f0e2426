"""`manage.py up` stays up: a killed process is restarted while the others keep serving, runs
in flight end in a true state, and four people using it for minutes bring nothing down."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from tests.integration.up_stack import Client, UpStack

pytestmark = pytest.mark.slow

SOAK_S = float(os.environ.get("PIPELINES_SOAK_S", "180"))
CLIENTS = 4
QUICK = "from runner import context\n(context.output_path('y') / 'v.txt').write_text('1')\n"
SLOW = ("import time\nfrom runner import context\ntime.sleep(8)\n"
        "(context.output_path('y') / 'v.txt').write_text('1')\n")


class HealthWatch(threading.Thread):
    """Asks /healthz every 0.2 s and keeps every answer that is not a 200."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.failures: list[str] = []
        self.asked = 0
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self.done.wait(0.2):
                self.asked += 1
                try:
                    status = http.get(f"{self.url}/healthz").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                if status != 200:
                    self.failures.append(str(status))


@pytest.fixture
def stack(tmp_path, request):
    """`up` on its defaults, or with the settings a test's `up_settings` mark names."""
    mark = request.node.get_closest_marker("up_settings")
    stack = UpStack(tmp_path / "var", **(mark.kwargs if mark else {}))
    yield stack
    if stack.process.poll() is None:
        stack.stop()


def restarted(stack: UpStack, name: str, pid: int, limit_s: float = 60) -> int:
    """Waits for `up` to start `name` again; the new pid."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            process = stack.child(name)
        except LookupError:
            process = None
        if process is not None and process.pid != pid:
            return process.pid
        time.sleep(0.2)
    raise AssertionError(f"{name} not restarted within {limit_s} s:\n{stack.output()[-3000:]}")


# A lost step is found after 5 s, not 30, so the killed worker's step ends within the test.
@pytest.mark.up_settings(STEP_LOST_AFTER_S="5", WORKER_LOST_AFTER_S="5")
@pytest.mark.timeout(400)
def test_killed_workers_are_restarted_while_the_web_server_keeps_answering(stack):
    client = Client(stack.url, stack.tokens(1)[0])
    pipeline = client.create_pipeline(f"slow {uuid.uuid4().hex[:6]}", SLOW, steps=1)
    watch = HealthWatch(stack.url)
    watch.start()

    in_flight = client.call("POST", f"/api/pipelines/{pipeline['id']}/runs/", json={})
    _wait_step_running(client, in_flight["id"])
    compute = stack.child("compute").pid
    os.kill(compute, signal.SIGKILL)
    restarted(stack, "compute", compute)
    control = stack.child("control").pid
    os.kill(control, signal.SIGKILL)
    restarted(stack, "control", control)

    ended = client.wait_finished(in_flight["id"])
    after = client.wait_finished(client.call(
        "POST", f"/api/pipelines/{pipeline['id']}/runs/", json={})["id"])
    watch.done.set()
    watch.join()

    output = stack.output()
    assert ended["status"] in ("succeeded", "failed"), ended
    assert after["status"] == "succeeded", after
    assert re.search(r"\[compute\] exited with signal SIGKILL .*restarting in 1 s", output)
    assert re.search(r"\[control\] exited with signal SIGKILL .*restarting in 1 s", output)
    assert watch.asked > 50 and watch.failures == [], watch.failures
    assert stack.stop() < 10


def _wait_step_running(client: Client, run_id: int, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        run = client.call("GET", f"/api/runs/{run_id}/")
        if any(step["state"] == "running" for step in run["steps"]):
            return
        time.sleep(0.2)
    raise AssertionError(f"no step of run {run_id} started: {run}")


@pytest.mark.timeout(SOAK_S + 600)
def test_four_people_use_one_up_for_minutes_and_nothing_goes_down(stack):
    keys = stack.tokens(CLIENTS)
    setup = Client(stack.url, keys[0])
    published = setup.create_pipeline(f"published {uuid.uuid4().hex[:6]}", QUICK)
    setup.call("POST", f"/api/pipelines/{published['id']}/versions/", json={"message": "v1"})
    endpoint = f"soak-{uuid.uuid4().hex[:6]}"
    setup.call("POST", "/api/endpoints/", json={"pipeline": published["id"], "name": endpoint})
    watch = HealthWatch(stack.url)
    watch.start()
    stop_at = time.monotonic() + SOAK_S
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda key: _use(Client(stack.url, key), endpoint, stop_at),
                                keys))
    watch.done.set()
    watch.join()

    runs = [run for result in results for run in result]
    statuses = {run["status"] for run in runs}
    steps = [step for run in runs for step in run["steps"]]
    waits = [_queue_wait_s(step) for step in steps]
    logs = "".join(path.read_text(errors="replace") for path in (stack.var / "log").iterdir())
    print(f"\nsoak: {SOAK_S:.0f} s, {CLIENTS} clients, {len(runs)} runs "
          f"({sum(r['trigger'] == 'endpoint' for r in runs)} through the endpoint), "
          f"{sum(s['state'] == 'succeeded' for s in steps)} steps run, statuses "
          f"{sorted(statuses)}, max queue wait {max(waits):.2f} s, healthz asked {watch.asked} "
          f"times, {len(watch.failures)} failures")
    assert statuses == {"succeeded"}, [r for r in runs if r["status"] != "succeeded"][:3]
    assert {step["state"] for step in steps} == {"succeeded"}  # run, not reused
    assert "exited with" not in stack.output(), stack.output()[-3000:]
    assert "Unrecoverable error" not in logs
    assert watch.failures == []


def _use(client: Client, endpoint: str, stop_at: float) -> list[dict]:
    """What one person does over and over: design a pipeline, run it, trigger the endpoint."""
    finished = []
    while time.monotonic() < stop_at:
        pipeline = client.create_pipeline(f"soak {uuid.uuid4().hex[:8]}", QUICK)
        run = client.call("POST", f"/api/pipelines/{pipeline['id']}/runs/",
                          json={"parameters": {"nonce": uuid.uuid4().hex}})
        triggered = client.call("POST", f"/api/endpoints/{endpoint}/runs/",
                                json={"parameters": {"nonce": uuid.uuid4().hex}})
        for started in (run, triggered):
            finished.append(client.wait_finished(started["id"]))
    return finished


def _queue_wait_s(step: dict) -> float:
    if not step["queued_at"] or not step["started_at"]:
        return 0.0
    return (datetime.fromisoformat(step["started_at"])
            - datetime.fromisoformat(step["queued_at"])).total_seconds()
