"""Runs over the API: history with filters, the run with its steps, logs, metrics, actions.

No worker here: runs are submitted (their jobs would leave only after a commit, which the test
transaction never makes) or their rows written directly.
"""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers

from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.models import LogLine, MetricPoint, Run, RunTag, StepRun


@pytest.fixture
def finished_run(workspace, pipeline, owner):
    """A failed run: prep succeeded (with logs and metrics), train failed."""
    run = Run.objects.create(workspace=workspace, pipeline=pipeline, spec=pipeline.spec,
                             parameters={"rows": 10}, status="failed", triggered_by=owner,
                             finished_at=timezone.now())
    prep = StepRun.objects.create(run=run, node="prep", component="python-script@1",
                                  state="succeeded", attempt=1, fingerprint="sha256:" + "1" * 64,
                                  outputs={"data": "sha256:" + "2" * 64})
    StepRun.objects.create(run=run, node="train", component="python-script@1",
                           state="failed", attempt=2, error="exit code 1")
    now = timezone.now()
    LogLine.objects.bulk_create([LogLine(step_run=prep, attempt=1, index=i, stream="stdout",
                                         text=f"line {i}", time=now) for i in range(1, 8)])
    MetricPoint.objects.bulk_create(
        [MetricPoint(run=run, step_run=prep, attempt=1, index=i * 2 + k, key=key, step=i,
                     value=i / 10, time=now)
         for i in range(1, 4) for k, key in enumerate(("loss", "acc"))])
    return run


def test_the_history_lists_runs_newest_first_without_n_plus_one(
        client_for, owner, workspace, pipeline, django_assert_max_num_queries):
    for i in range(30):
        run = Run.objects.create(workspace=workspace, pipeline=pipeline, spec={},
                                 triggered_by=owner)
        RunTag.objects.create(run=run, name=f"tag{i % 3}")
    client = client_for(owner)
    with django_assert_max_num_queries(6):
        body = client.get("/api/runs/?limit=25").json()
    assert body["count"] == 30 and len(body["results"]) == 25
    assert body["results"][0]["id"] > body["results"][-1]["id"]
    assert body["results"][0]["tags"] and body["results"][0]["pipeline_name"] == pipeline.name


def test_the_history_filters_and_searches(client_for, owner, workspace, pipeline, finished_run):
    other = Run.objects.create(workspace=workspace, pipeline=pipeline, spec={}, note="baseline",
                               created_at=timezone.now() - timedelta(days=3))
    RunTag.objects.create(run=other, name="gold")
    client = client_for(owner)

    def ids(query):
        response = client.get(f"/api/runs/{query}")
        assert response.status_code == 200, response.json()
        return [r["id"] for r in response.json()["results"]]

    assert ids("?status=failed") == [finished_run.pk]
    assert ids("?tag=gold") == [other.pk]
    assert ids("?search=baseline") == [other.pk]
    assert ids(f"?pipeline={pipeline.pk}&workspace={workspace.pk}") == [finished_run.pk,
                                                                         other.pk]
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"?created_after={since}") == [finished_run.pk]
    assert ids(f"?created_before={since}") == [other.pk]
    assert client.get("/api/runs/?status=exploded").status_code == 400
    assert client.get("/api/runs/?created_after=yesterday").status_code == 400


def test_a_run_shows_its_steps(client_for, owner, finished_run, django_assert_max_num_queries):
    client = client_for(owner)
    with django_assert_max_num_queries(6):
        body = client.get(f"/api/runs/{finished_run.pk}/").json()
    steps = {s["node"]: s for s in body["steps"]}
    assert steps["prep"]["state"] == "succeeded" and steps["prep"]["outputs"]
    assert (steps["train"]["state"], steps["train"]["attempt"], steps["train"]["error"]) == (
        "failed", 2, "exit code 1")
    assert body["parameters"] == {"rows": 10} and body["spec"]["nodes"]


def test_logs_come_in_order_from_an_index_on(client_for, owner, finished_run):
    client = client_for(owner)
    body = client.get(f"/api/runs/{finished_run.pk}/steps/prep/logs/?after=2&limit=3").json()
    assert [line["index"] for line in body["lines"]] == [3, 4, 5]
    assert body["lines"][0]["text"] == "line 3" and body["more"] is True and body["next"] == 5
    rest = client.get(f"/api/runs/{finished_run.pk}/steps/prep/logs/?after=5").json()
    assert [line["index"] for line in rest["lines"]] == [6, 7] and rest["more"] is False
    assert client.get(f"/api/runs/{finished_run.pk}/steps/prep/logs/?attempt=9").json()[
        "lines"] == []
    assert client.get(f"/api/runs/{finished_run.pk}/steps/nope/logs/").status_code == 404
    assert client.get(f"/api/runs/{finished_run.pk}/steps/prep/logs/?after=x"
                      ).status_code == 400


def test_metrics_come_as_series_and_as_csv(client_for, owner, finished_run):
    client = client_for(owner)
    body = client.get(f"/api/runs/{finished_run.pk}/metrics/?key=loss").json()
    assert [(s["node"], s["key"], s["steps"], s["values"]) for s in body["series"]] == [
        ("prep", "loss", [1, 2, 3], [0.1, 0.2, 0.3])]
    # Built without a serializer call a point, the times are still as DRF writes them.
    points = MetricPoint.objects.filter(run=finished_run, key="loss").order_by("index")
    assert body["series"][0]["times"] == [serializers.DateTimeField().to_representation(p.time)
                                          for p in points]
    response = client.get(f"/api/runs/{finished_run.pk}/metrics/?format=csv&node=prep")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 6 and set(rows[0]) == {"node", "attempt", "key", "step", "value", "time"}


def test_note_and_tags_change_but_nothing_else(client_for, owner, finished_run,
                                               other_workspace):
    client = client_for(owner)
    response = client.patch(f"/api/runs/{finished_run.pk}/",
                            {"note": "best so far", "tags": ["gold", "v2"]}, format="json")
    assert response.status_code == 200
    assert (response.json()["note"], response.json()["tags"]) == ("best so far", ["gold", "v2"])
    response = client.patch(f"/api/runs/{finished_run.pk}/",
                            {"status": "succeeded", "workspace": other_workspace.pk,
                             "triggered_by": "someone"}, format="json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"status", "workspace",
                                                               "triggered_by"}
    finished_run.refresh_from_db()
    assert finished_run.status == "failed"


def test_cancel_and_rerun(client_for, owner, pipeline, finished_run):
    client = client_for(owner)
    run = submit_run(pipeline, user=owner)
    response = client.post(f"/api/runs/{run.pk}/cancel/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled" or response.json()["canceling"]
    again = client.post(f"/api/runs/{finished_run.pk}/rerun/", {"from_failed": True},
                        format="json")
    assert again.status_code == 201
    assert (again.json()["trigger"], again.json()["rerun_of"]) == ("rerun", finished_run.pk)


def test_a_viewer_reads_runs_but_cannot_act_on_them(client_for, viewer, finished_run):
    client = client_for(viewer)
    assert client.get(f"/api/runs/{finished_run.pk}/").status_code == 200
    for url in ("cancel", "rerun"):
        assert client.post(f"/api/runs/{finished_run.pk}/{url}/", {}, format="json"
                           ).status_code == 403
    assert client.patch(f"/api/runs/{finished_run.pk}/", {"note": "x"}, format="json"
                        ).status_code == 403


def test_a_token_run_is_attributed_to_the_token_and_its_user(token_client, owner, workspace,
                                                             pipeline):
    response = token_client(owner, workspace, ["run"]).post(
        f"/api/pipelines/{pipeline.pk}/runs/", {"parameters": {"rows": 1}, "tags": ["ci"]},
        format="json")
    assert response.status_code == 201
    run = Run.objects.get(pk=response.json()["id"])
    assert run.token is not None and run.token.user == owner and run.triggered_by == owner
    assert response.json()["token"] == run.token.pk and response.json()["tags"] == ["ci"]
