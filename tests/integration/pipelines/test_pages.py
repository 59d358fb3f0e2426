"""The pipeline pages: list and create, editor, read-only version; tenancy as 404."""

import json

import pytest

from pipelines_ui.pipelines.models import Component, Pipeline, PipelineVersion, empty_spec
from pipelines_ui.services import DEMO_USER, seed_demo


@pytest.fixture
def pipeline(workspace):
    return Pipeline.objects.create(workspace=workspace, name="churn")


def page_data(response, element_id):
    html = response.content.decode()
    start = html.index(f'id="{element_id}"')
    body = html[html.index(">", start) + 1:html.index("</script>", start)]
    return json.loads(body)


def test_an_editor_creates_a_pipeline_and_lands_in_its_editor(client, owner, workspace):
    client.force_login(owner)
    response = client.post("/pipelines/", {"name": "churn", "description": ""})
    pipeline = Pipeline.objects.get(workspace=workspace, name="churn")
    assert response.status_code == 302
    assert response.url == f"/pipelines/{pipeline.pk}/edit/"
    assert pipeline.created_by == owner


def test_the_page_the_api_and_the_demo_seed_create_pipelines_alike(client, owner, workspace):
    client.force_login(owner)
    client.post("/pipelines/", {"name": "from the page"})
    assert client.post("/api/pipelines/", {"name": "from the api"},
                       content_type="application/json").status_code == 201
    made = Pipeline.objects.filter(workspace=workspace).order_by("name")
    assert [(p.name, p.spec, p.revision, p.created_by, p.updated_by) for p in made] == [
        ("from the api", empty_spec(), 1, owner, owner),
        ("from the page", empty_spec(), 1, owner, owner)]
    seed_demo()
    seed_demo()  # again: keeps what exists
    demo = Pipeline.objects.filter(workspace__slug="demo").select_related("created_by")
    assert sorted((p.name, p.created_by.username, p.updated_by_id == p.created_by_id)
                  for p in demo) == [("Diabetes regression", DEMO_USER, True),
                                     ("Linear fit", DEMO_USER, True)]


def test_a_taken_name_is_refused_on_the_form(client, owner, pipeline):
    client.force_login(owner)
    response = client.post("/pipelines/", {"name": "churn"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_a_viewer_sees_the_list_but_cannot_create(client, viewer, pipeline):
    client.force_login(viewer)
    response = client.get("/pipelines/")
    assert "churn" in response.content.decode()
    assert "New pipeline" not in response.content.decode()
    assert client.post("/pipelines/", {"name": "other"}).status_code == 403


def test_the_editor_hands_over_the_draft_palette_and_targets(
        client, owner, workspace, pipeline, local_target, django_assert_max_num_queries):
    Component.objects.create(workspace=workspace, name="train", version=1, title="Train",
                             outputs=[{"name": "model", "type": "model"}])
    client.force_login(owner)
    with django_assert_max_num_queries(15):
        response = client.get(f"/pipelines/{pipeline.pk}/edit/")
    data = page_data(response, "editor-data")
    assert data["pipeline"] == {"id": pipeline.pk, "name": "churn", "revision": 1,
                                "spec": {"parameters": {}, "nodes": [], "edges": []}}
    assert {c["key"] for c in data["components"]} >= {"python-script@1", "train@1"}
    assert data["computeTargets"] == [{"name": "local", "description": "", "is_default": True}]
    assert data["canEdit"] is True


def test_a_version_opens_read_only(client, viewer, pipeline):
    PipelineVersion.objects.create(pipeline=pipeline, number=1, spec=pipeline.spec,
                                   message="first")
    client.force_login(viewer)
    response = client.get(f"/pipelines/{pipeline.pk}/versions/1/")
    assert page_data(response, "version-data")["canEdit"] is False
    assert client.get(f"/pipelines/{pipeline.pk}/versions/2/").status_code == 404


def test_an_outsider_gets_404_for_every_page_of_another_workspace(client, outsider, pipeline):
    PipelineVersion.objects.create(pipeline=pipeline, number=1, spec=pipeline.spec)
    client.force_login(outsider)
    assert client.get(f"/pipelines/{pipeline.pk}/edit/").status_code == 404
    assert client.get(f"/pipelines/{pipeline.pk}/versions/1/").status_code == 404
    assert "churn" not in client.get("/pipelines/").content.decode()
