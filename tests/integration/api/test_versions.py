"""Publishing: POST versions freezes the draft as version N; a version shows its diff."""

from pipelines_ui.pipelines.models import PipelineVersion
from tests.integration.api.conftest import script_node, two_steps


def publish(client, pipeline, message=""):
    return client.post(f"/api/pipelines/{pipeline.pk}/versions/", {"message": message},
                       format="json")


def test_publishing_freezes_the_draft_as_the_next_version(client_for, owner, pipeline):
    client = client_for(owner)
    first = publish(client, pipeline, "first")
    assert first.status_code == 201
    assert (first.json()["number"], first.json()["message"], first.json()["created_by"]) == (
        1, "first", "owner")
    assert publish(client, pipeline).json()["number"] == 2
    listed = client.get(f"/api/pipelines/{pipeline.pk}/versions/").json()["results"]
    assert [v["number"] for v in listed] == [2, 1]
    assert client.get(f"/api/pipelines/{pipeline.pk}/").json()["latest_version"] == 2


def test_an_invalid_draft_cannot_be_published(client_for, owner, pipeline):
    pipeline.spec = {"nodes": [{"id": "x", "component": "nope@1"}]}
    pipeline.save()
    response = publish(client_for(owner), pipeline)
    assert response.status_code == 400
    assert response.json()["errors"][0]["node"] == "x"
    assert not PipelineVersion.objects.exists()


def test_a_version_shows_what_changed_since_the_one_before(client_for, owner, pipeline):
    client = client_for(owner)
    publish(client, pipeline)
    spec = two_steps()
    spec["parameters"]["rows"]["default"] = 20
    spec["parameters"]["seed"] = {"type": "int", "default": 1}
    spec["nodes"][1]["retries"] = 2
    spec["nodes"][0]["position"] = {"x": 5, "y": 5}  # layout only: not a change
    spec["nodes"].append(script_node("report", inputs=["data"]))
    spec["edges"].append({"from": "prep.data", "to": "report.data"})
    client.patch(f"/api/pipelines/{pipeline.pk}/", {"spec": spec, "revision": 1},
                 format="json")
    publish(client, pipeline)
    body = client.get(f"/api/pipelines/{pipeline.pk}/versions/2/").json()
    assert body["previous"] == 1
    assert body["diff"] == {
        "nodes": {"added": ["report"], "removed": [],
                  "changed": [{"node": "train", "fields": ["retries"]}]},
        "edges": {"added": [{"from": "prep.data", "to": "report.data"}], "removed": []},
        "parameters": {"added": ["seed"], "removed": [], "changed": ["rows"]},
    }
    assert client.get(f"/api/pipelines/{pipeline.pk}/versions/9/").status_code == 404


def test_a_viewer_cannot_publish(client_for, viewer, pipeline):
    response = publish(client_for(viewer), pipeline)
    assert response.status_code == 403
    assert not PipelineVersion.objects.exists()


def test_a_version_runs_as_frozen_even_after_the_draft_changes(client_for, owner, pipeline):
    client = client_for(owner)
    publish(client, pipeline)
    client.patch(f"/api/pipelines/{pipeline.pk}/", {"spec": {"nodes": []}, "revision": 1},
                 format="json")
    response = client.post(f"/api/pipelines/{pipeline.pk}/runs/", {"version": 1},
                           format="json")
    assert response.status_code == 201
    assert response.json()["version"] == 1
    assert [s["node"] for s in response.json()["steps"]] == ["prep", "train"]
    missing = client.post(f"/api/pipelines/{pipeline.pk}/runs/", {"version": 7}, format="json")
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "version"
