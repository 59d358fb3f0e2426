"""Datastores: admins add fsspec URLs; one default per workspace."""


def test_an_admin_adds_a_datastore_and_a_new_default_replaces_the_old(client_for, owner,
                                                                      workspace):
    client = client_for(owner)
    first = client.post("/api/datastores/", {"name": "local", "url": "file:///srv/data",
                                             "is_default": True}, format="json")
    assert first.status_code == 201
    client.post("/api/datastores/", {"name": "lake", "url": "s3://bucket/prefix",
                                     "is_default": True}, format="json")
    stores = {s["name"]: s["is_default"] for s in client.get("/api/datastores/").json()[
        "results"]}
    assert stores == {"lake": True, "local": False}


def test_a_url_that_is_not_fsspec_is_a_400(client_for, owner, workspace):
    for url in ("/srv/data", "nosuch://x", "file://relative/path"):
        response = client_for(owner).post("/api/datastores/", {"name": "x", "url": url},
                                          format="json")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "url"


def test_editors_cannot_add_datastores(client_for, workspace):
    from tests.conftest import _member

    client = client_for(_member(workspace, "editor", "editor"))
    assert client.post("/api/datastores/", {"name": "x", "url": "file:///x"},
                       format="json").status_code == 403
