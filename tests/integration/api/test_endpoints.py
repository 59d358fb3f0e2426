"""Endpoints: publish a version under a stable name, republish, disable, invoke."""

import pytest

from pipelines_ui.pipelines import services
from pipelines_ui.runs.models import Run


@pytest.fixture
def versions(pipeline):
    return [services.publish_version(pipeline, message=f"v{i}") for i in (1, 2)]


def test_an_editor_publishes_an_endpoint_at_the_latest_version(client_for, owner, pipeline,
                                                                versions):
    response = client_for(owner).post("/api/endpoints/", {"pipeline": pipeline.pk,
                                                          "name": "score"}, format="json")
    assert response.status_code == 201
    assert (response.json()["default_version"], response.json()["enabled"]) == (2, True)


def test_an_endpoint_needs_a_published_version(client_for, owner, pipeline):
    response = client_for(owner).post("/api/endpoints/", {"pipeline": pipeline.pk,
                                                          "name": "score"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "default_version"


def test_republishing_switches_the_version_the_endpoint_runs(client_for, owner, pipeline,
                                                             versions):
    client = client_for(owner)
    client.post("/api/endpoints/", {"pipeline": pipeline.pk, "name": "score",
                                    "default_version": 1}, format="json")
    first = client.post("/api/endpoints/score/runs/", {}, format="json").json()
    assert client.patch("/api/endpoints/score/", {"default_version": 2},
                        format="json").json()["default_version"] == 2
    second = client.post("/api/endpoints/score/runs/", {}, format="json").json()
    pinned = client.post("/api/endpoints/score/runs/", {"version": 1}, format="json").json()
    assert (first["version"], second["version"], pinned["version"]) == (1, 2, 1)
    assert {first["trigger"], second["trigger"]} == {"endpoint"}


def test_invoking_checks_parameters_against_the_versions_types(client_for, owner, pipeline,
                                                               versions):
    client = client_for(owner)
    client.post("/api/endpoints/", {"pipeline": pipeline.pk, "name": "score"}, format="json")
    response = client.post("/api/endpoints/score/runs/",
                           {"parameters": {"rows": "many", "colour": 1}}, format="json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"parameters.rows",
                                                               "parameters.colour"}
    ok = client.post("/api/endpoints/score/runs/", {"parameters": {"rows": 3}}, format="json")
    assert ok.status_code == 201 and ok.json()["parameters"] == {"rows": 3}


def test_a_disabled_endpoint_starts_nothing(client_for, owner, pipeline, versions):
    client = client_for(owner)
    client.post("/api/endpoints/", {"pipeline": pipeline.pk, "name": "score"}, format="json")
    client.patch("/api/endpoints/score/", {"enabled": False}, format="json")
    response = client.post("/api/endpoints/score/runs/", {}, format="json")
    assert response.status_code == 409
    assert "disabled" in response.json()["detail"]
    assert not Run.objects.exists()


def test_a_viewer_cannot_publish_republish_or_invoke(client_for, owner, viewer, pipeline,
                                                     versions):
    client_for(owner).post("/api/endpoints/", {"pipeline": pipeline.pk, "name": "score",
                                               "default_version": 1}, format="json")
    client = client_for(viewer)
    assert client.post("/api/endpoints/", {"pipeline": pipeline.pk, "name": "other"},
                       format="json").status_code == 403
    assert client.patch("/api/endpoints/score/", {"default_version": 2},
                        format="json").status_code == 403
    assert client.post("/api/endpoints/score/runs/", {}, format="json").status_code == 403
    assert client.get("/api/endpoints/score/").json()["default_version"] == 1


def test_the_name_cannot_be_changed_nor_the_workspace_set(client_for, owner, pipeline, versions,
                                                          other_workspace):
    client = client_for(owner)
    client.post("/api/endpoints/", {"pipeline": pipeline.pk, "name": "score"}, format="json")
    response = client.patch("/api/endpoints/score/", {"name": "x",
                                                      "workspace": other_workspace.pk},
                            format="json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"name", "workspace"}


def test_a_name_shared_by_two_of_my_workspaces_needs_the_workspace(client_for, owner, workspace,
                                                                   other_workspace, pipeline,
                                                                   versions):
    from pipelines_ui.accounts.models import Membership
    from pipelines_ui.pipelines.models import Pipeline

    Membership.objects.create(workspace=other_workspace, user=owner, role="admin")
    theirs = Pipeline.objects.create(workspace=other_workspace, name="p", spec=pipeline.spec)
    services.create_endpoint(theirs, name="score", version=services.publish_version(theirs))
    services.create_endpoint(pipeline, name="score", version=versions[0])
    client = client_for(owner)
    assert client.get("/api/endpoints/score/").status_code == 400
    assert client.get(f"/api/endpoints/score/?workspace={workspace.pk}").json()[
        "pipeline"] == pipeline.pk
