"""The model registry's API: models by name, versions with lineage, deploying, roles."""

import json

import pytest
from sklearn.linear_model import LinearRegression

from pipelines_ui.data.models import Artifact
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.registry.models import ModelVersion, RegisteredModel
from pipelines_ui.registry.services import register_model_version
from pipelines_ui.runs.models import Run, StepRun
from tests.integration.api.conftest import two_steps
from tests.integration.api.test_model_scoring import publish_model

DIGEST = "sha256:" + "ef" * 32


@pytest.fixture
def artifact(workspace):
    return Artifact.objects.create(workspace=workspace, digest=DIGEST,
                                   uri=f"file:///nowhere/artifacts/{'ef' * 32}")


@pytest.fixture
def registered(workspace, artifact):
    """Model "diabetes" v1, registered by the register step of a run."""
    pipeline = Pipeline.objects.create(workspace=workspace, name="p", spec=two_steps())
    run = Run.objects.create(workspace=workspace, pipeline=pipeline, spec=pipeline.spec)
    step = StepRun.objects.create(run=run, node="register", component="register-model@1")
    return register_model_version(workspace.pk, "diabetes", artifact=artifact,
                                  metrics={"rmse": 52.5}, step_run=step)


def test_a_version_shows_its_metrics_lineage_and_deployment(client_for, viewer, registered):
    client = client_for(viewer)
    version = client.get("/api/models/diabetes/versions/1/").json()
    assert version == {
        "number": 1, "artifact": DIGEST, "metrics": {"rmse": 52.5}, "description": "",
        "run": registered.step_run.run_id, "node": "register", "created_by": None,
        "created_at": version["created_at"], "deployed": False, "deployed_at": None}
    model = client.get("/api/models/diabetes/").json()
    assert (model["latest_version"], model["deployed_versions"]) == (1, [])
    assert client.get("/api/models/diabetes/versions/2/").status_code == 404
    assert client.get("/api/models/unknown/").status_code == 404


def test_an_editor_registers_by_hand_and_deploys(client_for, owner, workspace, tmp_path):
    fitted = LinearRegression().fit([[0.0] * 10, [1.0] * 10], [0.0, 1.0])
    model = publish_model(tmp_path, workspace, fitted)
    client = client_for(owner)
    created = client.post("/api/models/", {"name": "churn"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["workspace"] == workspace.pk
    response = client.post("/api/models/churn/versions/",
                           {"artifact": model.digest, "metrics": {"auc": 0.9}}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["number"] == 1 and response.json()["created_by"] == "owner"
    deployed = client.post("/api/models/churn/versions/1/deploy/", {}, format="json").json()
    assert deployed["deployed"] is True
    assert client.get("/api/models/churn/").json()["deployed_versions"] == [1]
    undeployed = client.post("/api/models/churn/versions/1/undeploy/", {}, format="json")
    assert undeployed.json()["deployed"] is False


def test_a_model_that_cannot_be_loaded_is_not_deployed(client_for, owner, registered):
    response = client_for(owner).post("/api/models/diabetes/versions/1/deploy/", {},
                                      format="json")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Model diabetes version 1: the model's files "
                                                 "are not in the datastore")
    assert not ModelVersion.objects.get(pk=registered.pk).is_deployed


def test_an_unknown_artifact_or_a_taken_name_is_a_400_naming_the_field(client_for, owner,
                                                                        registered):
    client = client_for(owner)
    response = client.post("/api/models/diabetes/versions/",
                           {"artifact": "sha256:" + "00" * 32}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "artifact"
    response = client.post("/api/models/", {"name": "diabetes"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


def test_a_viewer_reads_but_cannot_register_or_deploy(client_for, viewer, registered):
    client = client_for(viewer)
    assert client.get("/api/models/").json()["count"] == 1
    assert client.get("/api/models/diabetes/versions/").json()["count"] == 1
    for url, body in (("/api/models/", {"name": "mine"}),
                      ("/api/models/diabetes/versions/", {"artifact": DIGEST}),
                      ("/api/models/diabetes/versions/1/deploy/", {}),
                      ("/api/models/diabetes/versions/1/undeploy/", {})):
        assert client.post(url, body, format="json").status_code == 403, url
    assert not ModelVersion.objects.get(pk=registered.pk).is_deployed
    assert RegisteredModel.objects.count() == 1


def test_a_read_token_cannot_deploy(token_client, owner, workspace, registered):
    client = token_client(owner, workspace, scopes=["read"])
    assert client.get("/api/models/diabetes/").status_code == 200
    response = client.post("/api/models/diabetes/versions/1/deploy/", {}, format="json")
    assert response.status_code == 403


def test_a_name_two_workspaces_share_needs_the_workspace(client_for, owner, workspace,
                                                        other_workspace, registered):
    other_workspace.memberships.create(user=owner, role="admin")
    theirs = Artifact.objects.create(workspace=other_workspace, digest=DIGEST,
                                     uri=f"file:///nowhere/artifacts/{'ef' * 32}")
    register_model_version(other_workspace.pk, "diabetes", artifact=theirs)
    client = client_for(owner)
    response = client.get("/api/models/diabetes/")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "workspace"
    mine = client.get(f"/api/models/diabetes/?workspace={workspace.pk}").json()
    assert mine["workspace"] == workspace.pk


def test_listing_models_costs_a_fixed_number_of_queries(client_for, owner, workspace,
                                                        artifact,
                                                        django_assert_max_num_queries):
    for number in range(5):
        register_model_version(workspace.pk, f"model-{number}", artifact=artifact)
        register_model_version(workspace.pk, f"model-{number}", artifact=artifact)
    client = client_for(owner)
    with django_assert_max_num_queries(6):
        response = client.get("/api/models/")
    assert response.json()["count"] == 5
    assert {row["latest_version"] for row in response.json()["results"]} == {2}
    with django_assert_max_num_queries(7):
        assert client.get("/api/models/model-0/versions/").json()["count"] == 2


def test_the_registry_steps_are_in_the_components_api_and_the_editor_palette(
        client_for, owner, workspace):
    registry_steps = {"dataset@1", "register-dataset@1", "register-model@1", "deploy-model@1"}
    client = client_for(owner)
    listed = client.get("/api/components/?limit=500").json()["results"]
    assert registry_steps <= {row["key"] for row in listed}
    pipeline = Pipeline.objects.create(workspace=workspace, name="editor")
    html = client.get(f"/pipelines/{pipeline.pk}/edit/").content.decode()
    start = html.index('id="editor-data"')
    palette = json.loads(html[html.index(">", start) + 1:html.index("</script>", start)])
    assert registry_steps <= {c["key"] for c in palette["components"]}
