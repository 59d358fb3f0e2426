"""One spec for code and editor: saving from code keeps where the editor placed nodes, and a
loaded pipeline is the spec the editor saved."""

import pytest

from pipelines_ui.pipelines.models import Pipeline as PipelineRow
from runner.sdk import Client, Pipeline, PipelineData, PythonScriptStep


@pytest.fixture
def client(live_server, transactional_db, token):
    with Client(live_server.url, token) as sdk:
        yield sdk


def steps(extra: bool):
    raw = PipelineData("raw")
    PythonScriptStep("load", code="print(1)", outputs=[raw])
    last = PythonScriptStep("train", code="print(2)", inputs=[raw])
    if extra:
        return [last, PythonScriptStep("report", code="print(3)")]
    return [last]


def test_saving_from_code_keeps_the_positions_the_editor_gave(client):
    pipeline = Pipeline(client, steps(extra=False), name="placed")
    pipeline.save()
    saved = client.get(f"/api/pipelines/{pipeline.id}/")
    assert all("position" not in node for node in saved["spec"]["nodes"])  # editor lays out
    moved = saved["spec"]
    for i, node in enumerate(moved["nodes"]):
        node["position"] = {"x": 100 * i, "y": 50}
    client.patch(f"/api/pipelines/{pipeline.id}/", {"spec": moved,
                                                    "revision": saved["revision"]})

    assert Pipeline(client, steps(extra=True), name="placed").save() == []
    nodes = {n["id"]: n for n in PipelineRow.objects.get(pk=pipeline.id).spec["nodes"]}
    assert nodes["load"]["position"] == {"x": 0, "y": 50}
    assert nodes["train"]["position"] == {"x": 100, "y": 50}
    assert "position" not in nodes["report"]


def test_a_loaded_pipeline_is_the_spec_the_editor_saved(client):
    pipeline = Pipeline(client, steps(extra=False), name="loaded")
    pipeline.save()
    row = PipelineRow.objects.get(pk=pipeline.id)
    loaded = Pipeline.load(client, "loaded")
    assert loaded.to_spec() == row.spec and Pipeline.load(client, pipeline.id).id == row.pk
