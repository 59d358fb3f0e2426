"""Tokens and sessions: who gets in, as whom, and with which scopes (docs/reliability.md S4, S8)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.pipelines.models import Endpoint, PipelineVersion
from pipelines_ui.runs.models import Run


def with_key(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_token_reads_its_workspace(token_client, owner, workspace, pipeline):
    response = token_client(owner, workspace, ["read"]).get("/api/pipelines/")
    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [pipeline.pk]


def test_no_credentials_get_401_with_the_token_scheme(db):
    response = APIClient().get("/api/pipelines/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert set(response.json()) == {"detail", "errors"}


@pytest.mark.parametrize("key", ["nonsense", "pui_0123456789_wrong-secret", "pui_short"])
def test_unknown_or_malformed_keys_get_401(db, key):
    response = with_key(key).get("/api/pipelines/")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_a_wrong_secret_for_a_real_prefix_gets_401(owner, workspace):
    token, key = ApiToken.issue(workspace, owner, "t", ["read"])
    assert with_key(key[:-1] + ("A" if key[-1] != "A" else "B")).get(
        "/api/workspaces/").status_code == 401


def test_an_expired_token_gets_401(owner, workspace):
    _token, key = ApiToken.issue(workspace, owner, "t", ["read"],
                                 expires_at=timezone.now() - timedelta(seconds=1))
    response = with_key(key).get("/api/workspaces/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert response["WWW-Authenticate"] == 'Token realm="api"'


def test_a_revoked_token_gets_401_on_its_next_request(client_for, owner, workspace):
    token, key = ApiToken.issue(workspace, owner, "t", ["read"])
    assert with_key(key).get("/api/workspaces/").status_code == 200
    assert client_for(owner).delete(f"/api/tokens/{token.pk}/").status_code == 204
    response = with_key(key).get("/api/workspaces/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_last_used_is_written_at_most_once_a_minute(owner, workspace,
                                                    django_assert_num_queries):
    token, key = ApiToken.issue(workspace, owner, "t", ["read"])
    client = with_key(key)
    client.get("/api/workspaces/")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    client.get("/api/workspaces/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/workspaces/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


def test_a_read_only_token_cannot_write(token_client, owner, workspace, pipeline):
    client = token_client(owner, workspace, ["read"])
    for method, url, body in [
        ("post", "/api/pipelines/", {"workspace": workspace.pk, "name": "new"}),
        ("patch", f"/api/pipelines/{pipeline.pk}/", {"description": "changed"}),
        ("post", f"/api/pipelines/{pipeline.pk}/versions/", {}),
        ("post", f"/api/pipelines/{pipeline.pk}/runs/", {}),
        ("delete", f"/api/pipelines/{pipeline.pk}/", None),
    ]:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403, (method, url, response.json())
        assert "scope" in response.json()["detail"]
    assert not Run.objects.exists()


def test_a_run_token_starts_runs_but_cannot_publish(token_client, owner, workspace, pipeline):
    client = token_client(owner, workspace, ["run"])
    assert client.post(f"/api/pipelines/{pipeline.pk}/runs/", {}, format="json"
                       ).status_code == 201
    assert client.post(f"/api/pipelines/{pipeline.pk}/versions/", {}, format="json"
                       ).status_code == 403
    assert client.get("/api/runs/").status_code == 403  # no read scope


def test_an_endpoint_token_invokes_that_endpoint_only(token_client, owner, workspace,
                                                      pipeline):
    version = PipelineVersion.objects.create(pipeline=pipeline, number=1, spec=pipeline.spec)
    for name in ("scoring", "training"):
        Endpoint.objects.create(workspace=workspace, pipeline=pipeline, name=name,
                                default_version=version)
    client = token_client(owner, workspace, ["endpoint:invoke:scoring"])
    response = client.post("/api/endpoints/scoring/runs/", {}, format="json")
    assert response.status_code == 201
    run = Run.objects.get(pk=response.json()["id"])
    assert run.token.scopes == ["endpoint:invoke:scoring"]
    assert run.triggered_by == owner and run.trigger == "endpoint"
    assert client.post("/api/endpoints/training/runs/", {}, format="json").status_code == 403
    assert client.get("/api/runs/").status_code == 403
    assert client.post(f"/api/pipelines/{pipeline.pk}/versions/", {}, format="json"
                       ).status_code == 403


def test_a_token_cannot_outrank_its_user(token_client, viewer, workspace, pipeline):
    client = token_client(viewer, workspace, ["read", "publish", "run"])
    assert client.get(f"/api/pipelines/{pipeline.pk}/").status_code == 200
    assert client.patch(f"/api/pipelines/{pipeline.pk}/", {"description": "x"},
                        format="json").status_code == 403


def test_a_token_stops_working_when_its_user_leaves_the_workspace(token_client, owner,
                                                                  workspace, pipeline):
    client = token_client(owner, workspace, ["read"])
    owner.memberships.all().delete()
    assert client.get(f"/api/pipelines/{pipeline.pk}/").status_code == 404


def test_a_token_is_confined_to_its_workspace(token_client, owner, workspace, other_workspace,
                                              pipeline):
    from pipelines_ui.accounts.models import Membership

    Membership.objects.create(workspace=other_workspace, user=owner, role="admin")
    client = token_client(owner, other_workspace, ["read"])
    assert client.get(f"/api/pipelines/{pipeline.pk}/").status_code == 404
    assert [w["id"] for w in client.get("/api/workspaces/").json()["results"]] == [
        other_workspace.pk]


def test_tokens_cannot_manage_tokens(token_client, owner, workspace):
    client = token_client(owner, workspace, ["read", "run", "publish"])
    assert client.get("/api/tokens/").status_code == 403
    assert client.post("/api/tokens/", {"name": "more", "scopes": ["read"]},
                       format="json").status_code == 403


def test_a_session_write_without_the_csrf_token_is_refused(client_for, owner, workspace):
    client = client_for(owner, csrf=True)
    response = client.post("/api/pipelines/", {"workspace": workspace.pk, "name": "p"},
                           format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert client.get("/api/pipelines/").status_code == 200


def test_a_session_write_with_the_csrf_token_works(client_for, owner, workspace):
    client = client_for(owner, csrf=True)
    secret = "abcdefghijklmnopqrstuvwxyzABCDEF"  # what the csrftoken cookie holds
    client.cookies["csrftoken"] = secret
    response = client.post("/api/pipelines/", {"workspace": workspace.pk, "name": "p"},
                           format="json", HTTP_X_CSRFTOKEN=secret)
    assert response.status_code == 201
