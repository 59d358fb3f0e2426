"""Pipelines and their drafts: create, save with optimistic concurrency, validate, delete.

Decision: an invalid draft is saved (the editor keeps work in progress) and the reply lists
what is wrong; only a document that is not an object or is over the size limits is refused.
Runs and publishing need a valid spec.
"""

from pipelines_ui.pipelines.models import Pipeline
from tests.integration.api.conftest import script_node, two_steps


def test_an_editor_creates_a_pipeline_with_a_draft(client_for, owner, workspace, local_target):
    response = client_for(owner).post("/api/pipelines/", {
        "workspace": workspace.pk, "name": "churn", "description": "d", "spec": two_steps()},
        format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["revision"], body["valid"], body["errors"]) == (
        "churn", 1, True, [])
    assert body["created_by"] == "owner" and body["workspace"] == workspace.pk


def test_the_workspace_is_optional_for_a_member_of_one(client_for, owner, workspace):
    response = client_for(owner).post("/api/pipelines/", {"name": "solo"}, format="json")
    assert response.status_code == 201
    assert response.json()["workspace"] == workspace.pk


def test_a_duplicate_name_is_a_400_naming_it(client_for, owner, workspace, pipeline):
    response = client_for(owner).post("/api/pipelines/", {"name": pipeline.name},
                                      format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


def test_saving_the_draft_bumps_the_revision(client_for, owner, pipeline):
    spec = two_steps()
    spec["nodes"][0]["position"] = {"x": 10, "y": 20}
    response = client_for(owner).patch(f"/api/pipelines/{pipeline.pk}/",
                                       {"spec": spec, "revision": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["revision"] == 2
    pipeline.refresh_from_db()
    assert pipeline.spec == spec and pipeline.updated_by.username == "owner"


def test_a_save_based_on_a_stale_revision_is_refused_with_409(client_for, owner, pipeline):
    client = client_for(owner)
    assert client.patch(f"/api/pipelines/{pipeline.pk}/", {"spec": two_steps(), "revision": 1},
                        format="json").status_code == 200
    response = client.patch(f"/api/pipelines/{pipeline.pk}/",
                            {"spec": {"nodes": []}, "revision": 1}, format="json")
    assert response.status_code == 409
    assert "revision 1" in response.json()["detail"] and "reload" in response.json()["detail"]
    pipeline.refresh_from_db()
    assert pipeline.spec == two_steps() and pipeline.revision == 2


def test_a_spec_without_its_revision_is_refused(client_for, owner, pipeline):
    response = client_for(owner).patch(f"/api/pipelines/{pipeline.pk}/",
                                       {"spec": two_steps()}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "revision"


def test_an_invalid_draft_is_saved_with_its_errors(client_for, owner, pipeline):
    spec = {"nodes": [script_node("a"), {"id": "b", "component": "nope@1"}],
            "edges": [{"from": "a.out", "to": "b.in"}]}
    response = client_for(owner).patch(f"/api/pipelines/{pipeline.pk}/",
                                       {"spec": spec, "revision": 1}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False and body["spec"] == spec
    assert ("b", "component") in {(e["node"], e["field"]) for e in body["errors"]}


def test_a_draft_that_is_not_an_object_is_refused(client_for, owner, pipeline):
    response = client_for(owner).patch(f"/api/pipelines/{pipeline.pk}/",
                                       {"spec": [1, 2], "revision": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "spec"


def test_a_draft_over_the_node_limit_is_refused_naming_the_limit(client_for, owner, pipeline):
    spec = {"nodes": [{"id": f"n{i}"} for i in range(1001)]}
    response = client_for(owner).patch(f"/api/pipelines/{pipeline.pk}/",
                                       {"spec": spec, "revision": 1}, format="json")
    assert response.status_code == 400
    assert "limit is 1000" in response.json()["errors"][0]["message"]


def test_validate_checks_a_spec_without_saving_it(client_for, viewer, pipeline):
    client = client_for(viewer)
    response = client.post(f"/api/pipelines/{pipeline.pk}/validate/", {}, format="json")
    assert (response.json()["valid"], response.json()["errors"]) == (True, [])
    bad = two_steps()
    bad["edges"].append({"from": "train.data", "to": "prep.data"})
    response = client.post(f"/api/pipelines/{pipeline.pk}/validate/", {"spec": bad},
                           format="json")
    assert response.status_code == 200
    assert response.json()["valid"] is False
    assert response.json()["errors"][0]["field"].startswith("edges[1]")
    pipeline.refresh_from_db()
    assert pipeline.revision == 1


def test_a_viewer_reads_but_cannot_change_a_pipeline(client_for, viewer, workspace, pipeline):
    client = client_for(viewer)
    assert client.get(f"/api/pipelines/{pipeline.pk}/").json()["spec"] == pipeline.spec
    assert client.patch(f"/api/pipelines/{pipeline.pk}/", {"description": "x"},
                        format="json").status_code == 403
    assert client.delete(f"/api/pipelines/{pipeline.pk}/").status_code == 403
    response = client.post("/api/pipelines/", {"workspace": workspace.pk, "name": "v"},
                           format="json")
    assert response.status_code == 403


def test_read_only_and_unknown_fields_are_refused_by_name(client_for, owner, pipeline,
                                                          other_workspace):
    response = client_for(owner).patch(f"/api/pipelines/{pipeline.pk}/", {
        "workspace": other_workspace.pk, "created_by": 99, "colour": "red"}, format="json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {
        "workspace", "created_by", "colour"}
    pipeline.refresh_from_db()
    assert pipeline.workspace_id != other_workspace.pk


def test_the_list_is_filtered_searched_and_paged(client_for, owner, workspace, pipeline,
                                                 django_assert_max_num_queries):
    for i in range(5):
        Pipeline.objects.create(workspace=workspace, name=f"forecast {i}")
    client = client_for(owner)
    with django_assert_max_num_queries(6):
        body = client.get("/api/pipelines/?search=forecast&limit=2&offset=2").json()
    assert body["count"] == 5 and len(body["results"]) == 2
    assert "spec" not in body["results"][0]
    assert client.get(f"/api/pipelines/?workspace={workspace.pk}").json()["count"] == 6
    assert client.get("/api/pipelines/?workspace=x").status_code == 400
    assert client.get("/api/pipelines/?created_after=2999-01-01T00:00:00Z").json()[
        "count"] == 0
    assert client.get("/api/pipelines/?limit=100000").status_code == 200


def test_deleting_a_pipeline_removes_its_endpoints_and_their_schedules(client_for, owner,
                                                                      pipeline):
    from django_celery_beat.models import PeriodicTask

    from pipelines_ui.pipelines import services

    version = services.publish_version(pipeline)
    endpoint = services.create_endpoint(pipeline, name="ep", version=version)
    services.create_schedule(endpoint, name="s", cron="* * * * *")
    assert client_for(owner).delete(f"/api/pipelines/{pipeline.pk}/").status_code == 204
    assert not Pipeline.objects.filter(pk=pipeline.pk).exists()
    assert not PeriodicTask.objects.filter(name__startswith="schedule-").exists()
