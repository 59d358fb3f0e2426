"""A run and a step have one shape for every reader: the REST API, the run page's data and the
live events (runs/serializers.py), so the page replaces what it holds with whichever comes."""

import json

import pytest
from django.urls import reverse

from pipelines_ui.celery import app
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import events as engine_events
from pipelines_ui.runs.engine import step_token, submit_run
from tests.integration.runs.specs import edge, script

DIGEST = "sha256:" + "ef" * 32


@pytest.fixture
def events(transactional_db, monkeypatch):
    """The run's `step` and `run` events, as the engine hands them over after commit."""
    found = []
    monkeypatch.setattr(app, "send_task", lambda *args, **options: None)  # no broker here
    monkeypatch.setattr(engine_events, "broadcast",
                        lambda run_id, *sent: found.extend(json.loads(json.dumps(sent))))
    return found


def report(client, step, *events):
    response = client.post(
        f"/api/worker/steps/{step.pk}/events/", {"attempt_id": step.attempt_id, "events": events},
        content_type="application/json",
        headers={"Authorization": f"StepToken {step_token(step.pk, step.attempt_id)}"})
    assert response.status_code == 200, response.content


def run_to_the_end(client, run) -> None:
    for node in ("a", "b"):
        step = run.steps.get(node=node)
        report(client, step, {"type": "started", "seq": 1, "time": 1.0, "worker": "w1",
                              "pid": 7, "claim": f"claim-of-step-{node}"})
        report(client, step, {"type": "finished", "seq": 2, "time": 2.0, "exit_code": 0,
                              "outputs": {"out": {"digest": DIGEST, "uri": "file:///x",
                                                  "size": 3}}})


def test_the_api_the_page_and_the_events_give_a_run_and_its_steps_alike(
        client, events, workspace, local_target, owner):
    spec = {"parameters": {}, "edges": [edge("a.out", "b.x")], "nodes": [
        script("a", "pass", target="local", outputs=["out"]),
        script("b", "pass", target="local", inputs=["x"], outputs=["out"])]}
    run = submit_run(Pipeline.objects.create(workspace=workspace, name="ab", spec=spec),
                     user=owner)
    queued = next(e for e in events if e["type"] == "step")
    # No worker serves `local`: the event says so, as the API would.
    assert (queued["node"], queued["waiting_kind"]) == ("a", "worker")
    run_to_the_end(client, run)

    client.force_login(owner)
    api = client.get(reverse("run-detail", args=[run.pk])).json()
    listed = client.get(reverse("run-list")).json()["results"][0]
    page = client.get(reverse("runs:detail", args=[run.pk])).context["data"]["run"]
    assert json.loads(json.dumps(page)) == api
    last_of_each = {e["node"]: e for e in events if e["type"] == "step"}
    assert [{"type": "step", **step} for step in api["steps"]] == list(last_of_each.values())
    assert [e for e in events if e["type"] == "run"][-1] == {"type": "run", **listed}
    assert listed["status"] == "succeeded"
