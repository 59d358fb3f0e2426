"""R10: concurrent reporters and reconcilers never double-schedule a step.

Two processes report the completion of both parents of a join node at the same instant
(a barrier), many times over: the join step is dispatched exactly once each time. Two
reconciler processes released together over 100 lost attempts retry each exactly once. Runs
on the database the suite uses (PostgreSQL in CI, SQLite locally).
"""

import multiprocessing
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import dispatch, ingest_report, reconcile_once, step_token, submit_run
from pipelines_ui.runs.models import StepRun
from tests.integration.runs.specs import edge, script

ROUNDS = 100
DIGEST = "sha256:" + "ef" * 32


def report(step_run_id: int, attempt_id: str, events: list) -> None:
    ingest_report(step_run_id, step_token(step_run_id, attempt_id),
                  {"attempt_id": attempt_id, "events": events})


def finish_when_released(tasks, results, barrier) -> None:
    """Child process: wait at the barrier with the other, then report a step finished."""
    connections.close_all()  # never share the parent's connection
    for step_run_id, attempt_id in iter(tasks.get, None):
        barrier.wait()
        try:
            report(step_run_id, attempt_id, [{
                "type": "finished", "seq": 2, "time": 1.0, "exit_code": 0,
                "outputs": {"out": {"digest": DIGEST, "uri": "file:///x", "size": 1}}}])
            results.put("ok")
        except Exception as exc:  # reported to the parent, which fails the test
            results.put(repr(exc))
    connections.close_all()


@pytest.mark.timeout(300)
def test_a_join_is_dispatched_once_when_both_parents_finish_at_once(transactional_db,
                                                                    workspace, owner,
                                                                    monkeypatch):
    dispatched = multiprocessing.Manager().list()
    monkeypatch.setattr(dispatch, "send_jobs", lambda steps, artifacts=None: dispatched.extend(
        [(step.pk, step.attempt_id) for step in steps]))
    ComputeTarget.objects.create(workspace=workspace, name="local")
    code = "pass"
    spec = {"parameters": {}, "nodes": [
        script("left", code, target="local", outputs=["out"], allow_reuse=False),
        script("right", code, target="local", outputs=["out"], allow_reuse=False),
        script("join", code, target="local", inputs=["a", "b"], allow_reuse=False),
    ], "edges": [edge("left.out", "join.a"), edge("right.out", "join.b")]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="join", spec=spec)

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    queues = [context.Queue(), context.Queue()]
    results = context.Queue()
    connections.close_all()
    children = [context.Process(target=finish_when_released, args=(q, results, barrier))
                for q in queues]
    for child in children:
        child.start()
    try:
        for _ in range(ROUNDS):
            run = submit_run(pipeline, user=owner)
            parents = list(run.steps.filter(node__in=("left", "right")).order_by("node"))
            for step in parents:
                report(step.pk, step.attempt_id, [{"type": "started", "seq": 1, "time": 1.0,
                                                   "claim": "claim-" + step.attempt_id[:8],
                                                   "worker": "w", "pid": 1}])
            for queue, step in zip(queues, parents, strict=True):
                queue.put((step.pk, step.attempt_id))
            assert [results.get(timeout=60) for _ in parents] == ["ok", "ok"]
            join = run.steps.get(node="join")
            assert (join.state, join.attempt) == ("queued", 1)
            assert sum(1 for step_run_id, _ in dispatched if step_run_id == join.pk) == 1
    finally:
        for queue in queues:
            queue.put(None)
        for child in children:
            child.join(timeout=30)


LOST_STEPS = 100


def reconcile_when_released(barrier, results) -> None:
    """Child process: wait for the other, then run one reconciler pass."""
    connections.close_all()
    try:
        barrier.wait()
        results.put(len(reconcile_once().lost))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(repr(exc))
    finally:
        connections.close_all()


@pytest.mark.timeout(300)
def test_two_reconcilers_retry_each_of_100_lost_attempts_exactly_once(transactional_db,
                                                                      workspace, owner,
                                                                      monkeypatch, settings):
    dispatched = multiprocessing.Manager().list()
    monkeypatch.setattr(dispatch, "send_jobs", lambda steps, artifacts=None: dispatched.extend(
        [(step.pk, step.attempt_id) for step in steps]))
    ComputeTarget.objects.create(workspace=workspace, name="local")
    spec = {"parameters": {}, "edges": [], "nodes": [
        script(f"n{i}", "pass", target="local", allow_reuse=False, retries=1)
        for i in range(LOST_STEPS)]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="lost", spec=spec)
    run = submit_run(pipeline, user=owner)
    silent_since = timezone.now() - timedelta(seconds=settings.STEP_LOST_AFTER_S + 60)
    StepRun.objects.filter(run=run).update(state="running", claim="claim-lost-1",
                                           started_at=silent_since,
                                           last_heartbeat_at=silent_since)
    first_attempts = dict(StepRun.objects.filter(run=run).values_list("pk", "attempt_id"))
    del dispatched[:]

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    connections.close_all()
    children = [context.Process(target=reconcile_when_released, args=(barrier, results))
                for _ in range(2)]
    for child in children:
        child.start()
    found = [results.get(timeout=240) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert sum(found) == LOST_STEPS, found  # each lost attempt handled by one of the two
    steps = list(StepRun.objects.filter(run=run))
    assert {(s.state, s.attempt) for s in steps} == {("queued", 2)}
    assert all(s.attempt_id != first_attempts[s.pk] for s in steps)
    assert sorted(step_run_id for step_run_id, _ in dispatched) == sorted(first_attempts)
    assert {(s.pk, s.attempt_id) for s in steps} == set(dispatched)
