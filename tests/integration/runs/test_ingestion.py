"""The step-event ingestion API: each event applied once, stale attempts stopped (R3, R8)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pipelines_ui.celery import app
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import cancel_run, dispatch, step_token, submit_run
from pipelines_ui.runs.models import LogLine, MetricPoint, StepRun
from tests.integration.runs.specs import script

DIGEST = "sha256:" + "cd" * 32


@pytest.fixture
def step(workspace, local_target, owner):
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("only", "print('hi')", target="local", outputs=["out"])]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="one", spec=spec)
    run = submit_run(pipeline, user=owner)
    return run.steps.get()


def post(client, step, events, token=None, attempt_id=None):
    attempt_id = attempt_id or step.attempt_id
    return client.post(
        f"/api/worker/steps/{step.pk}/events/",
        {"attempt_id": attempt_id, "events": events}, content_type="application/json",
        headers={"Authorization": f"StepToken {token or step_token(step.pk, attempt_id)}"},
    )


def started(seq=1, claim="claim-one-1234"):
    return {"type": "started", "seq": seq, "time": 1.0, "claim": claim, "worker": "w1", "pid": 7}


def lines(first, count, seq):
    return {"type": "log", "seq": seq, "time": 1.0, "first": first,
            "lines": [{"stream": "stdout", "text": f"line {first + i}", "time": 1.0}
                      for i in range(count)]}


def finished(seq):
    return {"type": "finished", "seq": seq, "time": 2.0, "exit_code": 0,
            "outputs": {"out": {"digest": DIGEST, "uri": "file:///x", "size": 3}}}


def test_a_submitted_step_is_queued_with_an_attempt(step):
    assert (step.state, step.attempt) == ("queued", 1)
    assert len(step.attempt_id) == 32


def test_a_report_without_the_attempts_token_is_refused(client, step):
    assert post(client, step, [started()], token="0" * 64).status_code == 401
    other = StepRun(pk=step.pk + 1000)
    response = post(client, step, [started()], token=step_token(other.pk, step.attempt_id))
    assert response.status_code == 401
    step.refresh_from_db()
    assert step.state == "queued"


def test_a_malformed_report_gets_400_naming_the_field(client, step):
    response = post(client, step, [{"type": "log", "seq": 1, "time": 1, "first": 1}])
    assert response.status_code == 400
    assert "lines" in response.json()["detail"]


def test_the_same_claim_retried_is_accepted_and_another_delivery_is_refused(client, step):
    assert post(client, step, [started()]).status_code == 200
    assert post(client, step, [started()]).status_code == 200
    duplicate = post(client, step, [started(claim="claim-two-5678")])
    assert duplicate.status_code == 409
    step.refresh_from_db()
    assert (step.state, step.claim, step.worker) == ("running", "claim-one-1234", "w1")


def test_replayed_lines_and_points_are_stored_once(client, step):
    post(client, step, [started()])
    metric = {"type": "metric", "seq": 3, "time": 1.0, "first": 1,
              "points": [{"key": "loss", "value": 0.5, "step": 1, "time": 1.0},
                         {"key": "loss", "value": 0.25, "step": 2, "time": 1.0}]}
    for _ in range(3):
        assert post(client, step, [lines(1, 5, 2), metric]).status_code == 200
    assert post(client, step, [lines(6, 2, 4)]).status_code == 200
    texts = list(LogLine.objects.filter(step_run=step).values_list("text", flat=True))
    assert texts == [f"line {i}" for i in range(1, 8)]
    assert MetricPoint.objects.filter(step_run=step).count() == 2


def test_a_duplicate_finish_changes_nothing(client, step):
    post(client, step, [started()])
    assert post(client, step, [finished(2)]).status_code == 200
    step.refresh_from_db()
    first_finish = step.finished_at
    assert post(client, step, [finished(2)]).status_code == 200
    step.refresh_from_db()
    assert (step.state, step.finished_at, step.outputs) == ("succeeded", first_finish,
                                                            {"out": DIGEST})
    assert step.run.status == "succeeded"


def test_a_finish_before_the_claim_is_refused(client, step):
    assert post(client, step, [finished(1)]).status_code == 409
    step.refresh_from_db()
    assert step.state == "queued"


def test_an_old_attempt_gets_409_and_changes_nothing(client, step):
    old_attempt = step.attempt_id
    post(client, step, [started()])
    StepRun.objects.filter(pk=step.pk).update(attempt_id="f" * 32)  # a newer attempt took over
    response = post(client, step, [lines(1, 1, 2), finished(3)], attempt_id=old_attempt)
    assert response.status_code == 409
    assert response.json()["stop"] is True
    assert not LogLine.objects.filter(step_run=step).exists()


def test_a_cancel_reaches_the_worker_in_the_reply(client, step):
    post(client, step, [started()])
    cancel_run(step.run_id)
    reply = post(client, step, [{"type": "heartbeat", "seq": 2, "time": 1.0}])
    assert reply.json() == {"ok": True, "cancel": True}
    failed = {"type": "failed", "seq": 3, "time": 2.0, "reason": "canceled",
              "message": "canceled", "exit_code": -15, "traceback": ""}
    assert post(client, step, [failed]).status_code == 200
    step.refresh_from_db()
    assert step.state == "canceled"
    assert step.run.status == "canceled"


def fan_out(workspace, leaves: int, nonce: str) -> Pipeline:
    spec = {"parameters": {}, "nodes": [
        script("root", "pass", target="local", outputs=["out"], params={"nonce": nonce}),
        *(script(f"leaf{i}", "pass", target="local", inputs=["x"], outputs=["out"],
                 params={"nonce": f"{nonce} {i}"}) for i in range(leaves))],
        "edges": [{"from": "root.out", "to": f"leaf{i}.x"} for i in range(leaves)]}
    return Pipeline.objects.create(workspace=workspace, name=f"fan-out {nonce}", spec=spec)


@pytest.fixture
def sent(transactional_db, monkeypatch):
    """The jobs sent to the broker (a list instead), as each transaction commits."""
    jobs = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **options: jobs.append(args[0]))
    return jobs


def run_step(client, step) -> None:
    digest = "sha256:" + f"{step.pk:064x}"
    post(client, step, [started()])
    assert post(client, step, [{**finished(2), "outputs": {
        "out": {"digest": digest, "uri": "file:///x", "size": 1}}}]).status_code == 200


def queries_to_finish_the_root(client, workspace, owner, sent, leaves: int) -> int:
    run = submit_run(fan_out(workspace, leaves, nonce=str(leaves)), user=owner)
    root = run.steps.get(node="root")
    post(client, root, [started()])
    del sent[:]
    with CaptureQueriesContext(connection) as captured:
        run_step_finish = post(client, root, [finished(2)])
    assert run_step_finish.status_code == 200
    assert run.steps.filter(state="queued", dispatched_at__isnull=False).count() == leaves
    assert len(sent) == leaves
    return len(captured)


def test_a_fan_outs_root_queues_its_children_with_one_write_each(client, workspace,
                                                                  local_target, owner, sent):
    # Loading, reuse lookups, lineage and dispatch are made for all the children at once.
    small = queries_to_finish_the_root(client, workspace, owner, sent, leaves=5)
    large = queries_to_finish_the_root(client, workspace, owner, sent, leaves=25)
    assert large - small == 20


def chain(workspace, length: int, nonce: str) -> Pipeline:
    spec = {"parameters": {}, "nodes": [
        script(f"s{i}", "pass", target="local", inputs=["x"] if i else [], outputs=["out"],
               params={"nonce": nonce}) for i in range(length)],
        "edges": [{"from": f"s{i}.out", "to": f"s{i + 1}.x"} for i in range(length - 1)]}
    return Pipeline.objects.create(workspace=workspace, name=f"chain {nonce}", spec=spec)


def queries_to_reuse(client, owner, pipeline: Pipeline) -> int:
    first = submit_run(pipeline, user=owner)
    while queued := list(first.steps.filter(state="queued")):  # a chain's, one at a time
        for step in queued:
            run_step(client, step)
    with CaptureQueriesContext(connection) as captured:
        again = submit_run(pipeline, user=owner)
    assert {step.state for step in again.steps.all()} == {"reused"}
    return len(captured)


@pytest.mark.parametrize("shape", [fan_out, chain])
def test_a_rerun_reuses_its_steps_in_queries_that_do_not_grow_with_them(
        client, workspace, local_target, owner, sent, shape):
    # The pipeline's reusable steps are read at once, the reused ones written at once, however
    # many rounds it takes to reach them all down a chain.
    small = queries_to_reuse(client, owner, shape(workspace, 5, nonce=f"{shape.__name__} 5"))
    large = queries_to_reuse(client, owner, shape(workspace, 25, nonce=f"{shape.__name__} 25"))
    assert large == small


def test_a_node_with_reuse_off_runs_again_beside_an_identical_node_that_is_reused(
        client, workspace, local_target, owner, sent):
    twins = [script(name, "pass", target="local", inputs=["x"], outputs=["out"],
                    allow_reuse=reuse) for name, reuse in (("kept", True), ("fresh", False))]
    spec = {"parameters": {}, "nodes": [script("root", "pass", target="local", outputs=["out"]),
                                        *twins],
            "edges": [{"from": "root.out", "to": "kept.x"}, {"from": "root.out", "to": "fresh.x"}]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="twins", spec=spec)
    first = submit_run(pipeline, user=owner)
    run_step(client, first.steps.get(node="root"))
    for step in first.steps.exclude(node="root"):
        run_step(client, step)
    again = submit_run(pipeline, user=owner)
    states = dict(again.steps.values_list("node", "state"))
    assert states == {"root": "reused", "kept": "reused", "fresh": "queued"}
    assert again.steps.get(node="fresh").reason == "reuse is off for this node"


def test_a_job_that_cannot_be_built_or_sent_stays_undispatched_for_the_reconciler(
        transactional_db, client, workspace, local_target, owner, monkeypatch):
    sends = []

    def send_task(name, args, **options):
        if args[0]["node"] == "leaf3":
            raise ConnectionError("the broker went away")
        sends.append(args[0]["node"])

    monkeypatch.setattr(app, "send_task", send_task)
    build_job = dispatch.build_job
    monkeypatch.setattr(dispatch, "build_job", lambda step, *args: build_job(step, *args)
                        if step.node != "leaf1" else 1 / 0)
    run = submit_run(fan_out(workspace, 5, nonce="faults"), user=owner)
    run_step(client, run.steps.get(node="root"))
    dispatched = dict(run.steps.filter(state="queued").values_list("node", "dispatched_at"))
    assert sends == ["root", "leaf0", "leaf2"]  # leaf1 failed to build, leaf3 to send: stop
    assert [node for node, at in sorted(dispatched.items()) if at is not None] == [
        "leaf0", "leaf2"]
    assert len(dispatched) == 5
