"""S7: secret values go in through the API and never come out of it; S17: they are stored
encrypted."""

import pytest
from cryptography.fernet import Fernet

from pipelines_ui.runs.models import Run
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


def test_the_database_holds_the_value_encrypted_with_the_servers_key(client_for, owner,
                                                                     workspace, settings):
    created = client_for(owner).post("/api/secrets/", {"name": "API_KEY", "value": VALUE,
                                                       "workspace": workspace.pk},
                                     format="json")
    assert created.status_code == 201
    stored = Secret.objects.values_list("encrypted_value", flat=True).get()
    assert VALUE not in stored
    assert Fernet(settings.PIPELINES_SECRETS_KEY).decrypt(stored.encode()).decode() == VALUE


def test_without_a_key_a_value_is_refused_with_a_503_naming_the_setting(client_for, owner,
                                                                        workspace, settings):
    settings.PIPELINES_SECRETS_KEY = ""
    response = client_for(owner).post("/api/secrets/", {"name": "API_KEY", "value": VALUE,
                                                        "workspace": workspace.pk},
                                      format="json")
    assert response.status_code == 503
    assert "PIPELINES_SECRETS_KEY is not set" in response.json()["detail"]
    assert not Secret.objects.exists()


def test_a_step_whose_secret_no_key_decrypts_fails_naming_the_secret(
        client_for, owner, workspace, local_target, settings):
    from pipelines_ui.pipelines.models import Pipeline

    Secret.objects.create(workspace=workspace, name="API_KEY", value=VALUE)
    settings.PIPELINES_SECRETS_KEY = Fernet.generate_key().decode()  # the old key is gone
    node = {"id": "call", "component": "python-script@1", "compute": "local",
            "params": {"code": "pass"}, "secrets": ["API_KEY"]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="p", spec={
        "parameters": {}, "edges": [], "nodes": [node]})
    response = client_for(owner).post(f"/api/pipelines/{pipeline.pk}/runs/", {}, format="json")
    assert response.status_code == 201, response.content
    step = Run.objects.get(pk=response.json()["id"]).steps.get()
    assert step.state == "failed"
    assert step.error.startswith("secret 'API_KEY' of workspace")
    assert "PIPELINES_SECRETS_KEY" in step.error and step.traceback == ""
