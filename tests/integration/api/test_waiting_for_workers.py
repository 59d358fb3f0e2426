"""A step never waits in silence: validate and the plan warn when a step's target has no worker
online (naming the step and the target), and a queued step says over the API that it waits for
a worker on its target, and for how long.

No worker process here: workers are rows, online or not by their last heartbeat.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines_ui.compute.models import ComputeTarget, Worker
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.models import StepRun
from tests.integration.api.conftest import script_node, two_steps


def online_worker(target, hostname="box"):
    return Worker.objects.create(target=target, hostname=hostname)


def no_worker_message(node, target):
    return (f"no worker is online for compute target {target!r}: step {node} will wait until "
            f"one starts (python -m runner worker --target {target})")


def validate(client, pipeline, spec=None):
    response = client.post(f"/api/pipelines/{pipeline.pk}/validate/",
                           {"spec": spec} if spec else {}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_validate_warns_of_a_step_whose_target_has_no_worker_online(
        client_for, viewer, workspace, pipeline, local_target):
    ComputeTarget.objects.create(workspace=workspace, name="gpu")
    online_worker(local_target)
    spec = two_steps()
    spec["nodes"][1]["compute"] = "gpu"
    body = validate(client_for(viewer), pipeline, spec)
    assert (body["valid"], body["errors"]) == (True, [])
    assert body["warnings"] == [
        {"node": "train", "field": "compute", "message": no_worker_message("train", "gpu")}]


@pytest.mark.parametrize("how", ["lost", "stopped"])
def test_a_lost_or_stopped_worker_serves_nothing(client_for, viewer, pipeline, local_target,
                                                 how):
    worker = online_worker(local_target)
    assert validate(client_for(viewer), pipeline)["warnings"] == []
    if how == "lost":
        worker.last_seen_at = timezone.now() - timedelta(minutes=5)
    else:
        worker.stopped = True
    worker.save()
    warnings = validate(client_for(viewer), pipeline)["warnings"]
    assert [(w["node"], w["message"]) for w in warnings] == [
        ("prep", no_worker_message("prep", "local")),
        ("train", no_worker_message("train", "local"))]


def test_validate_warns_of_a_target_the_workspace_lacks(client_for, viewer, pipeline,
                                                         outsider):
    elsewhere = ComputeTarget.objects.create(workspace=outsider.memberships.get().workspace,
                                             name="elsewhere")
    online_worker(elsewhere)  # serving another workspace's steps only
    spec = {"parameters": {}, "edges": [], "nodes": [script_node("only", target="elsewhere")]}
    body = validate(client_for(viewer), pipeline, spec)
    assert body["valid"] is True
    assert body["warnings"] == [{"node": "only", "field": "compute",
                                 "message": "compute target 'elsewhere' is not in this workspace"}]


def test_an_invalid_spec_gets_its_errors_and_no_warnings(client_for, viewer, pipeline):
    spec = two_steps()
    spec["edges"].append({"from": "train.data", "to": "prep.data"})
    body = validate(client_for(viewer), pipeline, spec)
    assert body["valid"] is False and body["errors"] and body["warnings"] == []


def test_the_plan_warns_and_still_plans(client_for, owner, pipeline, local_target):
    client = client_for(owner)
    response = client.post(f"/api/pipelines/{pipeline.pk}/plan/", {}, format="json")
    assert response.status_code == 200
    assert [s["action"] for s in response.json()["steps"]] == ["run", "run"]
    assert [(w["node"], w["field"], w["message"]) for w in response.json()["warnings"]] == [
        ("prep", "compute", no_worker_message("prep", "local")),
        ("train", "compute", no_worker_message("train", "local"))]

    online_worker(local_target)
    response = client.post(f"/api/pipelines/{pipeline.pk}/plan/", {}, format="json")
    assert response.json()["warnings"] == []


def run_steps(client, run) -> dict:
    response = client.get(f"/api/runs/{run.pk}/")
    assert response.status_code == 200
    return {s["node"]: s for s in response.json()["steps"]}


def test_a_queued_step_says_it_waits_for_a_worker_and_for_how_long(
        client_for, owner, pipeline, local_target):
    run = submit_run(pipeline, user=owner)  # its job never leaves: the test never commits
    StepRun.objects.filter(run=run, node="prep").update(
        queued_at=timezone.now() - timedelta(seconds=125))
    client = client_for(owner)
    steps = run_steps(client, run)
    assert steps["prep"]["state"] == "queued"
    assert steps["prep"]["waiting"].startswith("waiting for a worker on local for 2 m 0")
    assert steps["train"]["waiting"] is None  # pending: it waits for prep, not for a worker

    worker = online_worker(local_target)
    assert run_steps(client, run)["prep"]["waiting"] is None
    worker.last_seen_at = timezone.now() - timedelta(minutes=5)
    worker.save()
    assert run_steps(client, run)["prep"]["waiting"].startswith("waiting for a worker on local")


def test_the_waiting_steps_cost_no_query_each(client_for, owner, workspace,
                                              django_assert_max_num_queries):
    from pipelines_ui.pipelines.models import Pipeline

    targets = [ComputeTarget.objects.create(workspace=workspace, name=f"t{i}") for i in range(3)]
    for target in targets[1:]:
        online_worker(target, "a")
        online_worker(target, "b")
    nodes = [script_node(f"s{i}", target=targets[i % 3].name) for i in range(30)]
    pipeline = Pipeline.objects.create(workspace=workspace, name="wide",
                                       spec={"parameters": {}, "nodes": nodes, "edges": []})
    run = submit_run(pipeline, user=owner)
    client = client_for(owner)
    with django_assert_max_num_queries(7):
        steps = run_steps(client, run)
    waiting = sorted(node for node, step in steps.items() if step["waiting"])
    assert waiting == sorted(f"s{i}" for i in range(0, 30, 3))
    assert steps["s0"]["waiting"].startswith("waiting for a worker on t0 for ")
