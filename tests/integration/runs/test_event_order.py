"""The order of a run's events on its WebSocket, as a client reads them from a live server:
the run's final `run` event comes after the final `step` event of every step, so a client that
trusts the order never shows a finished run with a step still running.

A real socket client against uvicorn serving the production ASGI stack, with a real worker
reporting to that server (the broadcasts leave from the process the reports reach).
"""

import json

import pytest
from django.test import Client
from websockets.sync.client import connect

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from tests.integration.runs.specs import edge, script
from tests.support import WorkerProcess, unique_target

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

FINAL_RUN_STATES = {"succeeded", "failed", "canceled"}
FINAL_STEP_STATES = {"succeeded", "failed", "canceled", "skipped", "reused"}
QUIET_AFTER_S = 2.0  # how long the socket is read on after the run's final event


def spec(target: str) -> dict:
    """a -> (b, c): b fails, c succeeds, so the run ends failed from either branch."""
    return {"parameters": {}, "nodes": [
        script("a", "from runner import context\n"
                    "(context.output_path('out') / 'x').write_text('1')\n",
               target=target, outputs=["out"]),
        script("b", "raise SystemExit('b gives up')", target=target, inputs=["x"]),
        script("c", "print('c done')", target=target, inputs=["x"]),
    ], "edges": [edge("a.out", "b.x"), edge("a.out", "c.x")]}


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def events_until_the_run_ends(socket) -> list[dict]:
    """Every event up to the run's final one, and whatever follows it for a while."""
    events = []
    while not any(e["type"] == "run" and e["status"] in FINAL_RUN_STATES for e in events):
        events.append(json.loads(socket.recv(timeout=60)))
    try:
        while True:
            events.append(json.loads(socket.recv(timeout=QUIET_AFTER_S)))
    except TimeoutError:
        return events


def test_the_runs_final_event_follows_the_final_event_of_each_step(asgi_server, workspace, owner):
    target = ComputeTarget.objects.create(workspace=workspace, name=unique_target())
    pipeline = Pipeline.objects.create(workspace=workspace, name="fan", spec=spec(target.name))
    run = submit_run(pipeline, user=owner)  # queued: no worker yet, so no event missed
    url = f"ws://127.0.0.1:{asgi_server.port}/ws/runs/{run.pk}/"
    headers = {"Origin": asgi_server.url, "Cookie": f"sessionid={session_cookie(owner)}"}
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        worker = WorkerProcess(target.name, asgi_server.url, key=issue_worker_key(target))
        try:
            events = events_until_the_run_ends(socket)
        finally:
            worker.stop()

    kinds = [(e["type"], e.get("node"), e.get("state") or e.get("status")) for e in events]
    end = next(i for i, e in enumerate(events)
               if e["type"] == "run" and e["status"] in FINAL_RUN_STATES)
    assert events[end]["status"] == "failed", kinds
    assert all(e["type"] != "step" for e in events[end + 1:]), kinds
    last_seen = {e["node"]: e["state"] for e in events[:end] if e["type"] == "step"}
    assert last_seen == {"a": "succeeded", "b": "failed", "c": "succeeded"}, kinds
    assert dict(run.steps.values_list("node", "state")) == last_seen
