"""Metric points as the server stores them: every field as reported, each point once however
its batches are replayed or overlap (R8), and a batch in one statement."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import step_token, submit_run
from pipelines_ui.runs.models import MetricPoint
from tests.integration.runs.specs import script


@pytest.fixture
def step(workspace, local_target, owner):
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("only", "print('hi')", target="local")]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="one", spec=spec)
    step = submit_run(pipeline, user=owner).steps.get()
    assert report(step, {"type": "started", "seq": 1, "time": 1.0, "claim": "claim-1234",
                         "worker": "w1", "pid": 7}).status_code == 200
    return step


def report(step, *events):
    return Client().post(
        f"/api/worker/steps/{step.pk}/events/",
        {"attempt_id": step.attempt_id, "events": list(events)}, content_type="application/json",
        headers={"Authorization": f"StepToken {step_token(step.pk, step.attempt_id)}"})


def points(seq: int, first: int, count: int) -> dict:
    return {"type": "metric", "seq": seq, "time": 1.0, "first": first, "points": [
        {"key": f"k{i % 3}", "value": i / 4, "step": None if i % 5 == 0 else i,
         "time": 1_700_000_000.123456 + i} for i in range(first, first + count)]}


def test_points_are_stored_as_reported_once_each_whatever_is_replayed(step):
    assert report(step, points(2, 1, 300)).status_code == 200
    assert report(step, points(2, 1, 300), points(3, 301, 200)).status_code == 200  # a replay
    assert report(step, points(3, 251, 250)).status_code == 200  # overlapping a stored batch
    stored = list(MetricPoint.objects.filter(step_run=step).order_by("index").values_list(
        "run_id", "attempt", "index", "key", "step", "value", "time"))
    assert stored == [
        (step.run_id, step.attempt, i, f"k{i % 3}", None if i % 5 == 0 else i, i / 4,
         datetime.fromtimestamp(1_700_000_000.123456 + i, tz=UTC)) for i in range(1, 501)]


def test_a_batch_of_points_is_one_statement(step):
    with CaptureQueriesContext(connection) as small:
        report(step, points(2, 1, 10))
    with CaptureQueriesContext(connection) as large:
        report(step, points(3, 11, 5000))
    assert len(large.captured_queries) == len(small.captured_queries)
