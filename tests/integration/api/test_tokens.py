"""Token management: admins issue (key shown once, stored hashed), list and revoke."""

from datetime import timedelta

from django.utils import timezone

from pipelines_ui.accounts.models import ApiToken


def test_the_key_is_shown_once_and_stored_hashed(client_for, owner, workspace):
    client = client_for(owner)
    response = client.post("/api/tokens/", {"name": "ci", "scopes": ["read", "run"],
                                            "expires_at": (timezone.now() + timedelta(days=1)
                                                           ).isoformat()}, format="json")
    assert response.status_code == 201
    key = response.json()["key"]
    assert key.startswith("pui_") and response.json()["scopes"] == ["read", "run"]
    token = ApiToken.objects.get()
    assert key.split("_", 2)[2] not in token.secret_hash
    listed = client.get("/api/tokens/").json()["results"]
    assert "key" not in listed[0] and listed[0]["prefix"] == token.prefix
    assert "key" not in client.get(f"/api/tokens/{token.pk}/").json()


def test_unknown_scopes_and_past_expiry_are_refused(client_for, owner, workspace):
    client = client_for(owner)
    response = client.post("/api/tokens/", {"name": "x", "scopes": ["root"]}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "scopes"
    response = client.post("/api/tokens/", {"name": "x", "scopes": ["read"],
                                            "expires_at": "2000-01-01T00:00:00Z"},
                           format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "expires_at"
    assert client.post("/api/tokens/", {"name": "x", "scopes": ["endpoint:invoke:score"]},
                       format="json").status_code == 201


def test_delete_revokes_and_the_token_stays_listed(client_for, owner, workspace):
    token, _key = ApiToken.issue(workspace, owner, "old", ["read"])
    client = client_for(owner)
    assert client.delete(f"/api/tokens/{token.pk}/").status_code == 204
    listed = client.get("/api/tokens/").json()["results"][0]
    assert listed["revoked_at"] is not None and listed["active"] is False


def test_only_admins_issue_and_revoke(client_for, owner, viewer, workspace):
    mine, _key = ApiToken.issue(workspace, viewer, "mine", ["read"])
    theirs, _key = ApiToken.issue(workspace, owner, "admin's", ["read"])
    client = client_for(viewer)
    assert client.post("/api/tokens/", {"name": "x", "scopes": ["read"]},
                       format="json").status_code == 403
    assert client.delete(f"/api/tokens/{mine.pk}/").status_code == 403
    assert [t["id"] for t in client.get("/api/tokens/").json()["results"]] == [mine.pk]
    assert client.get(f"/api/tokens/{theirs.pk}/").status_code == 404
