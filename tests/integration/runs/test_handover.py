"""The next step of a run handed to the worker slot whose step just ended, in the answer to its
final report: claimed for that slot, never also sent through the broker, and retried like any
lost attempt when nobody runs it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines_ui.celery import app
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, step_token, submit_run
from pipelines_ui.runs.models import Run, StepRun
from tests.integration.runs.specs import edge, script
from tests.support import wait_until

DIGEST = "sha256:" + "ef" * 32


@pytest.fixture
def sent(transactional_db, monkeypatch):
    """The jobs sent to the broker (a list instead)."""
    jobs = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **options: jobs.append(args[0]))
    return jobs


def fork_run(workspace, owner, *, second_target="local") -> Run:
    """a -> b (on `second_target`) and a -> c (on local): a's end makes both ready."""
    ComputeTarget.objects.get_or_create(workspace=workspace, name="local")
    ComputeTarget.objects.get_or_create(workspace=workspace, name="gpu")
    spec = {"parameters": {}, "edges": [edge("a.out", "b.x"), edge("a.out", "c.x")], "nodes": [
        script("a", "pass", target="local", outputs=["out"], allow_reuse=False),
        script("b", "pass", target=second_target, inputs=["x"], allow_reuse=False, retries=1),
        script("c", "pass", target="local", inputs=["x"], allow_reuse=False, retries=1)]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="fork", spec=spec)
    return submit_run(pipeline, user=owner)


def report_end(client, step: StepRun, *, hand_over: bool):
    """Claim `step`, then report its success, asking for the next step or not."""
    auth = {"Authorization": f"StepToken {step_token(step.pk, step.attempt_id)}"}
    url = f"/api/worker/steps/{step.pk}/events/"
    claim = {"type": "started", "seq": 1, "time": 1.0, "claim": "claim-a-123456",
             "worker": "w1", "pid": 7}
    assert client.post(url, {"attempt_id": step.attempt_id, "events": [claim]},
                       content_type="application/json", headers=auth).status_code == 200
    end = {"type": "finished", "seq": 2, "time": 2.0, "exit_code": 0,
           "outputs": {"out": {"digest": DIGEST, "uri": "file:///x", "size": 3}}}
    if hand_over:
        end["hand_over"] = {"claim": "claim-next-123456", "worker": "w1", "pid": 7}
    response = client.post(url, {"attempt_id": step.attempt_id, "events": [end]},
                           content_type="application/json", headers=auth)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_slot_gets_one_step_of_its_own_target_claimed_and_the_rest_go_to_the_broker(
        client, sent, workspace, owner):
    run = fork_run(workspace, owner, second_target="gpu")
    a = run.steps.get(node="a")
    del sent[:]

    answer = report_end(client, a, hand_over=True)

    c = run.steps.get(node="c")
    assert answer["next"]["step_run_id"] == c.pk
    assert answer["next"]["attempt_id"] == c.attempt_id
    assert (c.state, c.claim, c.worker) == ("running", "claim-next-123456", "w1")
    assert [job["node"] for job in sent] == ["b"]  # another target's step leaves as before


def test_without_the_request_every_ready_step_goes_to_the_broker(client, sent, workspace,
                                                                 owner):
    run = fork_run(workspace, owner)
    del sent[:]

    answer = report_end(client, run.steps.get(node="a"), hand_over=False)

    assert "next" not in answer
    assert sorted(job["node"] for job in sent) == ["b", "c"]
    assert set(run.steps.filter(node__in=["b", "c"]).values_list("state", flat=True)) == {
        "queued"}


def test_a_step_handed_over_that_nobody_runs_is_found_lost_and_retried(
        client, sent, workspace, owner, settings):
    settings.STEP_HEARTBEAT_S, settings.STEP_LOST_AFTER_S = 0.5, 3
    run = fork_run(workspace, owner)
    answer = report_end(client, run.steps.get(node="a"), hand_over=True)  # the answer is lost
    handed = StepRun.objects.get(pk=answer["next"]["step_run_id"])
    del sent[:]

    later = timezone.now() + timedelta(seconds=settings.STEP_LOST_AFTER_S + 10)
    assert reconcile_once(later).lost == [handed.pk]
    reconcile_once(later + timedelta(seconds=30))  # past the lost attempt's stop (R16)
    handed.refresh_from_db()
    assert (handed.state, handed.attempt) == ("queued", 2)
    assert [(job["node"], job["attempt"]) for job in sent] == [(handed.node, 2)]


def test_a_worker_runs_a_chain_by_hand_over_after_its_first_step(target, workspace, owner):
    spec = {"parameters": {}, "edges": [edge("s1.out", "s2.x"), edge("s2.out", "s3.x")],
            "nodes": [
                script("s1", "pass", target=target.name, outputs=["out"], allow_reuse=False),
                script("s2", "pass", target=target.name, inputs=["x"], outputs=["out"],
                       allow_reuse=False),
                script("s3", "pass", target=target.name, inputs=["x"], allow_reuse=False)]}
    run = submit_run(Pipeline.objects.create(workspace=workspace, name="chain", spec=spec),
                     user=owner)

    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_until(done, timeout=90)
    steps = {step.node: step for step in run.steps.all()}
    assert run.status == "succeeded"
    assert steps["s1"].dispatched_at is not None  # through the broker
    for node in ("s2", "s3"):  # handed over: claimed by the slot that ran the one before
        assert steps[node].dispatched_at is None
        assert steps[node].worker == steps["s1"].worker
