"""`waiting_reason`: what a queued step waits for, on the run page too; and a step that waits
for a worker runs once one comes up."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from pipelines_ui.compute.models import ComputeTarget, Worker
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.models import Run, StepRun
from pipelines_ui.runs.waiting import waiting_reason
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

T0 = timezone.now().replace(microsecond=0)


@pytest.fixture
def step(workspace, local_target):
    pipeline = Pipeline.objects.create(workspace=workspace, name="p", spec={})
    run = Run.objects.create(workspace=workspace, pipeline=pipeline, spec={})
    return StepRun.objects.create(run=run, node="train", component="python-script@1",
                                  compute_target=local_target, state="queued", attempt=1,
                                  queued_at=T0)


def test_a_queued_step_with_no_worker_online_waits_for_one(step):
    assert waiting_reason(step, T0 + timedelta(seconds=4)) == \
        "waiting for a worker on local for 4.0 s"


def test_a_worker_is_online_as_seen_from_now(step, settings):
    Worker.objects.create(target=step.compute_target, hostname="box", last_seen_at=T0)
    lost_after = settings.WORKER_LOST_AFTER_S
    assert waiting_reason(step, T0 + timedelta(seconds=lost_after - 1)) is None
    assert waiting_reason(step, T0 + timedelta(seconds=lost_after + 65)) == \
        f"waiting for a worker on local for 1 m {lost_after + 5:02d} s"


@pytest.mark.parametrize("state", ["pending", "running", "succeeded", "failed"])
def test_only_a_queued_step_waits(step, state):
    step.state = state
    assert waiting_reason(step, T0) is None


def test_a_step_whose_target_was_deleted_says_so(step):
    step.compute_target.delete()
    step.refresh_from_db()
    assert waiting_reason(step, T0 + timedelta(minutes=3)) == \
        "waiting for a worker on a deleted compute target for 3 m 00 s"


def test_the_run_page_shows_the_wait_in_a_constant_number_of_queries(
        client, owner, workspace, local_target, django_assert_max_num_queries):
    nodes = [script(f"s{i}", "print(1)", target="local") for i in range(20)]
    pipeline = Pipeline.objects.create(workspace=workspace, name="wide",
                                       spec={"parameters": {}, "nodes": nodes, "edges": []})
    run = submit_run(pipeline, user=owner)
    client.force_login(owner)
    with django_assert_max_num_queries(13):
        response = client.get(reverse("runs:detail", args=[run.pk]))
    steps = response.context["data"]["run"]["steps"]
    assert len(steps) == 20
    assert all(s["waiting"].startswith("waiting for a worker on local for ") for s in steps)
    assert {s["waiting_kind"] for s in steps} == {"worker"}


def hold_for_a_lost_attempt(step: StepRun, stops_at) -> None:
    """As the server leaves a retry whose lost attempt may still be running (R16)."""
    step.attempts = [{"attempt": 1, "stops_at": stops_at.isoformat()}]
    step.attempt = 2
    step.save()


def test_the_run_page_and_the_api_say_which_wait_it_is(client, owner, step):
    client.force_login(owner)

    def shown() -> list[tuple[str, str]]:
        page = client.get(reverse("runs:detail", args=[step.run_id])).context["data"]
        page = page["run"]["steps"]
        api = client.get(f"/api/runs/{step.run_id}/").json()["steps"]
        return [(s["waiting_kind"], s["waiting"].split(" (")[0].split(" on ")[0])
                for s in (*page, *api)]

    assert shown() == [("worker", "waiting for a worker")] * 2
    hold_for_a_lost_attempt(step, timezone.now() + timedelta(minutes=10))
    assert shown() == [("lost_attempt", "waiting for the lost attempt to stop")] * 2


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_step_waiting_for_a_worker_runs_once_one_comes_up(engine, workspace, owner,
                                                            client):
    target = ComputeTarget.objects.create(workspace=workspace, name=unique_target())
    pipeline = Pipeline.objects.create(workspace=workspace, name="later", spec={
        "parameters": {}, "edges": [], "nodes": [script("only", "print('ran')",
                                                        target=target.name)]})
    run = submit_run(pipeline, user=owner)
    step = run.steps.get()
    wait_until(lambda: StepRun.objects.get(pk=step.pk).dispatched_at, timeout=30)
    client.force_login(owner)
    waiting = client.get(f"/api/runs/{run.pk}/").json()["steps"][0]["waiting"]
    assert waiting.startswith(f"waiting for a worker on {target.name} for ")

    worker = WorkerProcess(target.name, engine.url, key=issue_worker_key(target))
    try:
        wait_until(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=60)
    finally:
        worker.stop()
    assert Run.objects.get(pk=run.pk).status == "succeeded", run.steps.get().error
    assert client.get(f"/api/runs/{run.pk}/").json()["steps"][0]["waiting"] is None
