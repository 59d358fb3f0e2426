"""A caller reaches only its workspaces' objects: anything else is 404, everywhere (S3).

Workspace B's objects are made directly; a token and a session of workspace A's admin then walk
every route with B's ids. Creating something that references B's objects is a 400 naming the
field, as if the object did not exist.
"""

import pytest
from django.utils import timezone

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.data.models import Artifact, Dataset, DatasetVersion, Datastore
from pipelines_ui.pipelines import services
from pipelines_ui.pipelines.models import Component, Pipeline
from pipelines_ui.registry.models import ModelVersion
from pipelines_ui.registry.services import deploy_version, register_model_version
from pipelines_ui.runs.models import LogLine, MetricPoint, Run, StepRun
from tests.integration.api.conftest import two_steps

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def theirs(other_workspace, outsider):
    """One of each kind of object in workspace B."""
    ComputeTarget.objects.create(workspace=other_workspace, name="their-cpu")
    pipeline = Pipeline.objects.create(workspace=other_workspace, name="secret",
                                       spec=two_steps("their-cpu"))
    version = services.publish_version(pipeline, message="v1", user=outsider)
    endpoint = services.create_endpoint(pipeline, name="their-endpoint", version=version)
    schedule = services.create_schedule(endpoint, name="nightly", cron="0 3 * * *")
    run = Run.objects.create(workspace=other_workspace, pipeline=pipeline, spec=pipeline.spec)
    step = StepRun.objects.create(run=run, node="prep", component="python-script@1")
    LogLine.objects.create(step_run=step, attempt=0, index=1, stream="stdout", text="secret",
                           time=timezone.now())
    MetricPoint.objects.create(run=run, step_run=step, attempt=0, index=1, key="loss",
                               value=1.0, time=timezone.now())
    artifact = Artifact.objects.create(workspace=other_workspace, digest=DIGEST,
                                       uri=f"file:///nowhere/artifacts/{'ab' * 32}")
    dataset = Dataset.objects.create(workspace=other_workspace, name="their-data")
    DatasetVersion.objects.create(dataset=dataset, number=1, artifact=artifact)
    deploy_version(register_model_version(other_workspace.pk, "their-model", artifact=artifact))
    token, _key = ApiToken.issue(other_workspace, outsider, "theirs", ["read"])
    return {
        "workspace": other_workspace, "pipeline": pipeline, "endpoint": endpoint,
        "schedule": schedule, "run": run, "artifact": artifact, "dataset": dataset,
        "token": token,
        "target": ComputeTarget.objects.get(name="their-cpu"),
        "datastore": Datastore.objects.create(workspace=other_workspace, name="store",
                                              url="file:///tmp/their-store"),
        "component": Component.objects.create(workspace=other_workspace, name="their-step",
                                              version=1, title="Theirs"),
    }


def object_routes(b):
    p, r = b["pipeline"].pk, b["run"].pk
    e, s = b["endpoint"].name, b["schedule"].pk
    return [
        ("get", f"/api/workspaces/{b['workspace'].pk}/", None),
        ("get", f"/api/pipelines/{p}/", None),
        ("patch", f"/api/pipelines/{p}/", {"description": "mine now"}),
        ("delete", f"/api/pipelines/{p}/", None),
        ("post", f"/api/pipelines/{p}/validate/", {}),
        ("get", f"/api/pipelines/{p}/versions/", None),
        ("post", f"/api/pipelines/{p}/versions/", {"message": "hijack"}),
        ("get", f"/api/pipelines/{p}/versions/1/", None),
        ("post", f"/api/pipelines/{p}/runs/", {}),
        ("post", f"/api/pipelines/{p}/plan/", {}),
        ("get", f"/api/runs/{r}/", None),
        ("patch", f"/api/runs/{r}/", {"note": "mine"}),
        ("post", f"/api/runs/{r}/cancel/", {}),
        ("post", f"/api/runs/{r}/rerun/", {}),
        ("get", f"/api/runs/{r}/steps/prep/logs/", None),
        ("get", f"/api/runs/{r}/metrics/", None),
        ("get", f"/api/runs/{r}/metrics/?format=csv", None),
        ("get", f"/api/endpoints/{e}/", None),
        ("patch", f"/api/endpoints/{e}/", {"enabled": False}),
        ("delete", f"/api/endpoints/{e}/", None),
        ("post", f"/api/endpoints/{e}/runs/", {}),
        ("get", f"/api/schedules/{s}/", None),
        ("patch", f"/api/schedules/{s}/", {"enabled": False}),
        ("delete", f"/api/schedules/{s}/", None),
        ("get", f"/api/compute-targets/{b['target'].pk}/", None),
        ("patch", f"/api/compute-targets/{b['target'].pk}/", {"description": "x"}),
        ("get", f"/api/datastores/{b['datastore'].pk}/", None),
        ("get", f"/api/artifacts/{DIGEST}/", None),
        ("get", f"/api/datasets/{b['dataset'].pk}/", None),
        ("get", f"/api/datasets/{b['dataset'].pk}/versions/", None),
        ("post", f"/api/datasets/{b['dataset'].pk}/versions/", {"artifact": DIGEST}),
        ("get", "/api/models/their-model/", None),
        ("get", "/api/models/their-model/versions/", None),
        ("post", "/api/models/their-model/versions/", {"artifact": DIGEST}),
        ("get", "/api/models/their-model/versions/1/", None),
        ("post", "/api/models/their-model/versions/1/deploy/", {}),
        ("post", "/api/models/their-model/versions/1/undeploy/", {}),
        ("post", "/api/models/their-model/versions/1/score", {"rows": [[0]]}),
    ]


TOKEN_ROUTES = lambda b: [  # noqa: E731 - sessions only
    ("get", f"/api/tokens/{b['token'].pk}/", None),
    ("delete", f"/api/tokens/{b['token'].pk}/", None),
]


def assert_all_404(client, routes):
    for method, url, body in routes:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.status_code,
                                             response.content[:200])


def assert_untouched(b):
    b["pipeline"].refresh_from_db()
    assert b["pipeline"].description == "" and b["pipeline"].versions.count() == 1
    assert Run.objects.filter(workspace=b["workspace"]).count() == 1
    assert not b["run"].canceling and b["run"].note == ""
    b["endpoint"].refresh_from_db()
    b["schedule"].refresh_from_db()
    assert b["endpoint"].enabled and b["schedule"].enabled
    ApiToken.objects.get(pk=b["token"].pk, revoked_at=None)
    their_model = ModelVersion.objects.get(model__name="their-model")
    assert their_model.is_deployed and ModelVersion.objects.count() == 1


def test_a_token_of_workspace_a_gets_404_for_every_object_of_workspace_b(
        token_client, owner, workspace, theirs):
    assert_all_404(token_client(owner, workspace), object_routes(theirs))
    assert_untouched(theirs)


def test_a_session_of_workspace_a_gets_404_for_every_object_of_workspace_b(
        client_for, owner, workspace, theirs):
    assert_all_404(client_for(owner), object_routes(theirs) + TOKEN_ROUTES(theirs))
    assert_untouched(theirs)


@pytest.mark.parametrize("route", ["workspaces", "pipelines", "runs", "endpoints", "schedules",
                                   "compute-targets", "datastores", "artifacts", "datasets",
                                   "models", "tokens", "components"])
def test_lists_and_searches_hold_only_the_callers_objects(client_for, owner, workspace,
                                                          theirs, route):
    for query in ("", "?search=secret", f"?workspace={theirs['workspace'].pk}"):
        response = client_for(owner).get(f"/api/{route}/{query}")
        assert response.status_code == 200
        rows = response.json()["results"]
        owners = [row["id"] if route == "workspaces" else row["workspace"] for row in rows]
        assert theirs["workspace"].pk not in owners, rows


def test_creating_with_a_reference_to_workspace_b_is_a_400_naming_the_field(
        client_for, owner, workspace, pipeline, theirs):
    client = client_for(owner)
    cases = [
        ("/api/pipelines/", {"workspace": theirs["workspace"].pk, "name": "x"}, "workspace"),
        ("/api/endpoints/", {"pipeline": theirs["pipeline"].pk, "name": "x"}, "pipeline"),
        ("/api/schedules/", {"endpoint": theirs["endpoint"].pk, "name": "x",
                             "cron": "* * * * *"}, "endpoint"),
        ("/api/compute-targets/", {"workspace": theirs["workspace"].pk, "name": "x"},
         "workspace"),
        ("/api/datastores/", {"workspace": theirs["workspace"].pk, "name": "x",
                              "url": "file:///tmp/x"}, "workspace"),
        ("/api/datasets/", {"workspace": theirs["workspace"].pk, "name": "x"}, "workspace"),
        ("/api/models/", {"workspace": theirs["workspace"].pk, "name": "x"}, "workspace"),
        ("/api/tokens/", {"workspace": theirs["workspace"].pk, "name": "x",
                          "scopes": ["read"]}, "workspace"),
        ("/api/components/", {"workspace": theirs["workspace"].pk, "name": "x",
                              "title": "X"}, "workspace"),
    ]
    for url, body, field in cases:
        response = client.post(url, body, format="json")
        assert response.status_code == 400, (url, response.json())
        assert [e["field"] for e in response.json()["errors"]] == [field], url
    dataset = Dataset.objects.create(workspace=workspace, name="mine")
    response = client.post(f"/api/datasets/{dataset.pk}/versions/", {"artifact": DIGEST},
                           format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "artifact"


def test_a_run_on_workspace_b_compute_is_a_400_naming_the_node(client_for, owner, workspace,
                                                                theirs):
    pipeline = Pipeline.objects.create(workspace=workspace, name="borrow",
                                       spec=two_steps("their-cpu"))
    response = client_for(owner).post(f"/api/pipelines/{pipeline.pk}/runs/", {}, format="json")
    assert response.status_code == 400
    assert {(e["node"], e["field"]) for e in response.json()["errors"]} == {
        ("prep", "compute"), ("train", "compute")}
