"""Datasets: named, versioned artifacts of a workspace."""

from pipelines_ui.data.models import Artifact

DIGEST = "sha256:" + "cd" * 32


def test_a_dataset_gets_versions_from_the_workspaces_artifacts(client_for, owner, workspace):
    Artifact.objects.create(workspace=workspace, digest=DIGEST, uri="file:///x/artifacts/cd")
    client = client_for(owner)
    dataset = client.post("/api/datasets/", {"name": "customers"}, format="json").json()
    url = f"/api/datasets/{dataset['id']}/versions/"
    assert client.post(url, {"artifact": DIGEST, "description": "jan"},
                       format="json").json()["number"] == 1
    assert client.post(url, {"artifact": DIGEST}, format="json").json()["number"] == 2
    assert [v["number"] for v in client.get(url).json()["results"]] == [2, 1]
    assert client.get(f"/api/datasets/{dataset['id']}/").json()["latest_version"] == 2


def test_an_unknown_artifact_is_a_400_naming_it(client_for, owner, workspace):
    client = client_for(owner)
    dataset = client.post("/api/datasets/", {"name": "customers"}, format="json").json()
    for artifact in (DIGEST, "not-a-digest"):
        response = client.post(f"/api/datasets/{dataset['id']}/versions/",
                               {"artifact": artifact}, format="json")
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "artifact"


def test_a_viewer_cannot_create_datasets(client_for, viewer, workspace):
    assert client_for(viewer).post("/api/datasets/", {"name": "x"}, format="json"
                                   ).status_code == 403
