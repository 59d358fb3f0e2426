"""dataset, register-dataset and deploy-model on a real worker: what the server does when
they start and when they succeed."""

import pytest
from rest_framework.test import APIClient

from pipelines_ui.data.models import Dataset, DatasetVersion
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.registry.models import ModelVersion
from pipelines_ui.runs.engine import plan_run, submit_run
from tests.integration.runs.specs import edge, script
from tests.integration.runs.test_engine import finished, steps

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def writer(target: str) -> dict:
    """write (a table of `rows` rows) -> register-dataset "points"."""
    return {
        "parameters": {"rows": {"type": "int", "default": 3}},
        "nodes": [
            script("write", """
                from runner import context
                rows = context.param('rows')
                lines = ['x'] + [str(i) for i in range(rows)]
                (context.output_path('table') / 'points.csv').write_text('\\n'.join(lines))
                """, target=target, outputs=["table"], params={"rows": "${rows}"}),
            {"id": "publish", "component": "register-dataset@1", "compute": target,
             "params": {"name": "points", "description": "${rows} rows"}},
        ],
        "edges": [edge("write.table", "publish.data")],
    }


def reader(target: str, version: int = 0) -> dict:
    """dataset "points" -> count (prints how many rows it read)."""
    return {
        "parameters": {},
        "nodes": [
            {"id": "points", "component": "dataset@1", "compute": target,
             "params": {"name": "points", "version": version}},
            script("count", """
                from runner import context
                text = (context.input_path('table') / 'points.csv').read_text()
                print('rows', len(text.splitlines()) - 1)
                """, target=target, inputs=["table"]),
        ],
        "edges": [edge("points.data", "count.table")],
    }


def printed(step) -> list[str]:
    return list(step.log_lines.filter(stream="stdout").values_list("text", flat=True))


def test_a_registered_dataset_is_read_back_and_a_new_version_runs_the_reader_again(
        workspace, target, owner):
    writing = Pipeline.objects.create(workspace=workspace, name="write", spec=writer(target.name))
    reading = Pipeline.objects.create(workspace=workspace, name="read", spec=reader(target.name))
    first = finished(submit_run(writing, user=owner))
    assert first.status == "succeeded", {s.node: s.error for s in first.steps.all()}
    version = DatasetVersion.objects.get(dataset__name="points")
    publish = steps(first)["publish"]
    assert (version.number, version.description) == (1, "3 rows")
    assert version.step_run == publish and version.created_by == owner
    assert version.artifact.digest == steps(first)["write"].outputs["table"]
    client = APIClient()
    client.force_login(owner)
    [row] = client.get(f"/api/datasets/{version.dataset_id}/versions/").json()["results"]
    assert (row["number"], row["run"], row["node"]) == (1, first.pk, "publish")

    read = finished(submit_run(reading, user=owner))
    assert read.status == "succeeded", {s.node: s.error for s in read.steps.all()}
    assert steps(read)["points"].outputs["data"] == version.artifact.digest
    assert printed(steps(read)["count"]) == ["rows 3"]
    assert version.artifact in steps(read)["points"].consumed.all()  # lineage

    again = finished(submit_run(reading, user=owner))
    assert {s.state for s in again.steps.all()} == {"reused"}

    assert [step["action"] for step in plan_run(reading)] == ["reuse", "reuse"]
    finished(submit_run(writing, parameters={"rows": 5}, user=owner))
    assert [step["action"] for step in plan_run(reading)] == ["run", "run"]
    newer = finished(submit_run(reading, user=owner))
    assert {s.node: s.state for s in newer.steps.all()} == {"points": "succeeded",
                                                            "count": "succeeded"}
    assert printed(steps(newer)["count"]) == ["rows 5"]
    pinned = Pipeline.objects.create(workspace=workspace, name="pinned",
                                     spec=reader(target.name, version=1))
    old = steps(finished(submit_run(pinned, user=owner)))
    assert old["points"].outputs["data"] == version.artifact.digest
    # The same table as the first read: its count is reused from there.
    assert old["count"].state == "reused" and old["count"].reused_from == steps(read)["count"]


def test_an_unknown_dataset_fails_the_step_with_a_sentence(workspace, target, owner):
    Dataset.objects.create(workspace=workspace, name="points")
    cases = {0: "dataset 'points' has no versions yet", 4: "dataset 'points' has no version 4"}
    for version, message in cases.items():
        pipeline = Pipeline.objects.create(workspace=workspace, name=f"read {version}",
                                           spec=reader(target.name, version))
        run = finished(submit_run(pipeline, user=owner))
        by_node = steps(run)
        assert run.status == "failed"
        assert (by_node["points"].state, by_node["points"].error) == ("failed", message)
        assert by_node["count"].state == "skipped"
    spec = reader(target.name)
    spec["nodes"][0]["params"]["name"] = "nothing"
    run = finished(submit_run(Pipeline.objects.create(workspace=workspace, name="x", spec=spec),
                              user=owner))
    assert steps(run)["points"].error == "no dataset named 'nothing' in this workspace"


def test_deploying_a_model_that_was_never_registered_fails_with_a_sentence(
        workspace, target, owner):
    spec = {"parameters": {}, "nodes": [
        {"id": "data", "component": "sample-data@1", "compute": target.name,
         "params": {"dataset": "diabetes", "max_rows": 60}},
        {"id": "train", "component": "train-sklearn@1", "compute": target.name,
         "params": {"estimator": "ridge"}},
        {"id": "deploy", "component": "deploy-model@1", "compute": target.name,
         "params": {"name": "diabetes"}},
    ], "edges": [edge("data.data", "train.data"), edge("train.model", "deploy.model")]}
    run = finished(submit_run(Pipeline.objects.create(workspace=workspace, name="d", spec=spec),
                              user=owner))
    deploy = steps(run)["deploy"]
    assert run.status == "failed" and deploy.state == "failed"
    assert deploy.error == ("model 'diabetes' has no registered version holding this model; "
                            "put a register-model step named 'diabetes' before deploy-model")
    assert not ModelVersion.objects.exists()
