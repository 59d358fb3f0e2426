"""Artifact downloads: a file as itself, a folder as a zip, one file of a folder."""

import io
import zipfile

import pytest

from pipelines_ui.data.models import Artifact
from runner.datastore import Datastore


@pytest.fixture
def store(tmp_path):
    return Datastore((tmp_path / "store").as_uri())


def register(store, workspace, local_path):
    ref = store.publish(local_path)
    return Artifact.objects.create(workspace=workspace, digest=ref["digest"], uri=ref["uri"],
                                   size=ref["size"])


def test_a_folder_downloads_as_a_zip(client_for, viewer, workspace, store, tmp_path):
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.txt").write_text("weights")
    (folder / "sub" / "notes.md").write_text("# notes")
    artifact = register(store, workspace, folder)
    response = client_for(viewer).get(f"/api/artifacts/{artifact.digest}/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["model.txt", "sub/notes.md"]
    assert archive.read("model.txt") == b"weights"


def test_one_file_of_a_folder_and_a_file_artifact_download_as_themselves(
        client_for, viewer, workspace, store, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "value.txt").write_text("42")
    single = tmp_path / "single.csv"
    single.write_text("a,b\n")
    client = client_for(viewer)
    folder_artifact = register(store, workspace, folder)
    response = client.get(f"/api/artifacts/{folder_artifact.digest}/?path=value.txt")
    assert b"".join(response.streaming_content) == b"42"
    assert client.get(f"/api/artifacts/{folder_artifact.digest}/?path=../../etc/passwd"
                      ).status_code == 404
    file_artifact = register(store, workspace, single)
    response = client.get(f"/api/artifacts/{file_artifact.digest}/")
    assert b"".join(response.streaming_content) == b"a,b\n"


def test_an_artifact_of_another_workspace_or_gone_from_its_store_is_404(
        client_for, outsider, viewer, workspace, store, tmp_path):
    (tmp_path / "f.txt").write_text("secret")
    artifact = register(store, workspace, tmp_path / "f.txt")
    assert client_for(outsider).get(f"/api/artifacts/{artifact.digest}/").status_code == 404
    gone = Artifact.objects.create(workspace=workspace, digest="sha256:" + "e" * 64,
                                   uri=store.artifact_uri("sha256:" + "e" * 64))
    assert client_for(viewer).get(f"/api/artifacts/{gone.digest}/").status_code == 404


def test_the_list_shows_lineage(client_for, viewer, workspace, store, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    artifact = register(store, workspace, tmp_path / "f.txt")
    rows = client_for(viewer).get(f"/api/artifacts/?digest={artifact.digest}").json()["results"]
    assert [(r["digest"], r["produced_by_run"]) for r in rows] == [(artifact.digest, None)]
