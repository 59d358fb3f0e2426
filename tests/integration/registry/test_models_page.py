"""The models page: a workspace's registered models and versions, in two queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pipelines_ui.data.models import Artifact
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.registry.services import deploy_version, register_model_version
from pipelines_ui.runs.models import Run, StepRun


def artifact(workspace, n: int) -> Artifact:
    return Artifact.objects.create(workspace=workspace, digest=f"sha256:{n:064x}",
                                   uri=f"file:///store/{n}", size=1)


@pytest.fixture
def registered(workspace, owner):
    pipeline = Pipeline.objects.create(workspace=workspace, name="train")
    run = Run.objects.create(workspace=workspace, pipeline=pipeline, spec={})
    step = StepRun.objects.create(run=run, node="register", component="register-model@1")
    versions = []
    for name in ("churn", "diabetes", "forecast"):
        for n in range(3):
            versions.append(register_model_version(
                workspace.pk, name, artifact=artifact(workspace, len(versions) + 1),
                metrics={"rmse": 50.0 + n}, step_run=step if n else None))
    deploy_version(versions[4])  # diabetes v2
    return run


def test_the_page_lists_models_versions_lineage_and_what_is_served(client, owner, registered,
                                                                   outsider, other_workspace):
    register_model_version(other_workspace.pk, "secret-model",
                           artifact=artifact(other_workspace, 99))
    client.force_login(owner)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("registry:models"))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index('data-model="churn"') < html.index('data-model="diabetes"')
    assert "secret-model" not in html
    assert f"run {registered.pk}</a>, step <code>register</code>" in html
    assert "registered by hand" in html
    assert html.count(">deployed<") == 1
    assert "/api/models/diabetes/versions/2/score" in html
    model_queries = [q for q in queries.captured_queries if "registry_" in q["sql"]]
    assert len(model_queries) == 2  # the models, then all their versions


def test_a_workspace_without_models_says_how_to_get_one(client, owner):
    client.force_login(owner)
    page = client.get(reverse("registry:models"))
    assert b'data-testid="no-models"' in page.content
