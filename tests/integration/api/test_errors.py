"""Errors are JSON with a detail and the fields at fault; never HTML, never a 500 (S9, S10)."""

import json

from django.db import OperationalError
from rest_framework.test import APIClient


def test_malformed_json_is_a_400(client_for, owner, workspace):
    response = client_for(owner).post("/api/pipelines/", '{"name": ',
                                      content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_a_body_over_the_limit_is_a_413_naming_the_limit(client_for, owner, pipeline, settings):
    body = json.dumps({"spec": {"nodes": [], "junk": "x" * 3_000_000}, "revision": 1})
    response = client_for(owner).patch(f"/api/pipelines/{pipeline.pk}/", body,
                                       content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in response.json()["detail"]


def test_a_body_that_is_not_json_is_a_415_whatever_its_size(client_for, owner, workspace):
    response = client_for(owner).post("/api/pipelines/", {"name": "x" * 3_000_000},
                                      format="multipart")
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


def test_wrong_types_and_missing_fields_name_the_field(client_for, owner, workspace):
    response = client_for(owner).post("/api/pipelines/", {"name": ["a", "list"],
                                                          "description": 5}, format="json")
    assert response.status_code == 400
    assert "name" in {e["field"] for e in response.json()["errors"]}
    response = client_for(owner).post("/api/pipelines/", {}, format="json")
    assert response.json()["errors"] == [
        {"node": None, "field": "name", "message": "This field is required."}]
    assert response.json()["detail"] == "name: This field is required."


def test_a_database_outage_is_a_503_with_retry_after(client_for, owner, monkeypatch):
    def unavailable(self):
        raise OperationalError("server closed the connection unexpectedly")

    client = client_for(owner)
    monkeypatch.setattr("pipelines_ui.pipelines.api.PipelineViewSet.get_queryset", unavailable)
    response = client.get("/api/pipelines/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"detail": "The database is unavailable; retry shortly.",
                               "errors": []}


def test_not_found_and_not_allowed_are_json(client_for, owner, workspace):
    client = client_for(owner)
    assert client.get("/api/pipelines/999/").json()["detail"]
    response = client.put("/api/runs/1/", {}, format="json")
    assert response.status_code == 405 and response.json()["detail"]


def test_unauthenticated_errors_have_the_same_shape(db):
    body = APIClient().get("/api/runs/").json()
    assert set(body) == {"detail", "errors"}
