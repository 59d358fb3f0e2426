"""S7: secret values go in through the API and never come out of it."""

import pytest

from pipelines_ui.secrets.models import Secret

VALUE = "s3cr3t-value-that-never-comes-back"


@pytest.fixture
def secret(workspace, owner):
    return Secret.objects.create(workspace=workspace, name="API_KEY", value=VALUE,
                                 created_by=owner)


def test_an_admin_sets_a_secret_and_never_reads_its_value_back(client_for, owner, workspace):
    client = client_for(owner)
    created = client.post("/api/secrets/", {"name": "API_KEY", "value": VALUE,
                                            "workspace": workspace.pk}, format="json")
    assert created.status_code == 201, created.content
    assert "value" not in created.json()
    pk = created.json()["id"]
    changed = client.patch(f"/api/secrets/{pk}/", {"value": VALUE + "-2"}, format="json")
    assert changed.status_code == 200
    assert Secret.objects.get(pk=pk).value == VALUE + "-2"
    for response in (created, changed, client.get("/api/secrets/"),
                     client.get(f"/api/secrets/{pk}/"), client.get("/api/schema/")):
        assert VALUE.encode() not in response.content
    assert client.get(f"/api/secrets/{pk}/").json()["name"] == "API_KEY"


def test_the_name_must_be_an_environment_variable_name(client_for, owner, workspace):
    response = client_for(owner).post("/api/secrets/", {"name": "not a name", "value": "x",
                                                        "workspace": workspace.pk},
                                      format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


def test_a_viewer_lists_names_but_cannot_set_values(client_for, viewer, workspace, secret):
    client = client_for(viewer)
    assert [s["name"] for s in client.get("/api/secrets/").json()["results"]] == ["API_KEY"]
    assert client.post("/api/secrets/", {"name": "B", "value": "x", "workspace": workspace.pk},
                       format="json").status_code == 403
    assert client.patch(f"/api/secrets/{secret.pk}/", {"value": "x"},
                        format="json").status_code == 403


def test_another_workspace_sees_nothing(client_for, outsider, secret):
    client = client_for(outsider)
    assert client.get("/api/secrets/").json()["results"] == []
    assert client.get(f"/api/secrets/{secret.pk}/").status_code == 404
    assert client.delete(f"/api/secrets/{secret.pk}/").status_code == 404


def test_a_run_that_declares_an_undefined_secret_is_refused_naming_the_node(
        client_for, owner, workspace, local_target):
    from pipelines_ui.pipelines.models import Pipeline

    Secret.objects.create(workspace=workspace, name="API_KEY", value="s3cr3t-value")
    node = {"id": "call", "component": "python-script@1", "compute": "local",
            "params": {"code": "pass"}, "secrets": ["API_KEY", "API_KEYY"]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="typo", spec={
        "parameters": {}, "edges": [], "nodes": [node]})
    response = client_for(owner).post(f"/api/pipelines/{pipeline.pk}/runs/", {}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{
        "node": "call", "field": "secrets",
        "message": "secret 'API_KEYY' is not defined in this workspace; add it first "
                   "(Secrets, or POST /api/secrets/)"}]
