"""Uploading a folder (a step's source snapshot) as a tar archive: POST /api/artifacts/."""

import io
import tarfile

import pytest

from pipelines_ui.accounts.models import Membership
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.data.models import Artifact
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine.dispatch import build_job
from pipelines_ui.runs.models import StepRun
from runner.datastore import tree_digest


@pytest.fixture(autouse=True)
def datastore(settings, tmp_path):
    settings.DATASTORE_URL = (tmp_path / "store").as_uri()


@pytest.fixture
def editor(workspace, django_user_model):
    user = django_user_model.objects.create_user("editor", password="a-long-test-password")
    Membership.objects.create(workspace=workspace, user=user, role="editor")
    return user


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "src"
    (folder / "lib").mkdir(parents=True)
    (folder / "main.py").write_text("print('hello')\n")
    (folder / "lib" / "util.py").write_text("X = 1\n")
    return folder


def tar_of(folder, *, gzip=True, extra=None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=child.name)
        if extra is not None:
            extra(tar)
    return buffer.getvalue()


def upload(client, body, content_type="application/gzip", query=""):
    return client.post(f"/api/artifacts/{query}", data=body, content_type=content_type)


def test_a_folder_becomes_an_artifact_named_by_its_content(client_for, editor, workspace,
                                                           source):
    response = upload(client_for(editor), tar_of(source))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["digest"] == tree_digest(source)[0]
    assert (body["workspace"], body["produced_by"]) == (workspace.pk, None)
    download = client_for(editor).get(f"/api/artifacts/{body['digest']}/?path=lib/util.py")
    assert b"".join(download.streaming_content) == b"X = 1\n"


def test_the_same_folder_again_is_the_same_artifact_and_a_change_is_a_new_one(
        client_for, editor, source):
    client = client_for(editor)
    first = upload(client, tar_of(source, gzip=False), content_type="application/octet-stream")
    again = upload(client, tar_of(source))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["digest"] == again.json()["digest"]
    (source / "main.py").write_text("print('changed')\n")
    changed = upload(client, tar_of(source))
    assert changed.status_code == 201 and changed.json()["digest"] != first.json()["digest"]
    assert Artifact.objects.count() == 2


def test_an_upload_over_the_limit_is_a_413_that_names_the_setting(client_for, editor, source,
                                                                  settings):
    settings.PIPELINES_MAX_UPLOAD_BYTES = 200
    response = upload(client_for(editor), tar_of(source, gzip=False),
                      content_type="application/x-tar")
    assert response.status_code == 413
    assert "PIPELINES_MAX_UPLOAD_BYTES" in response.json()["detail"]


def test_an_archive_that_unpacks_past_the_limit_is_a_413(client_for, editor, tmp_path,
                                                         settings):
    folder = tmp_path / "zeros"
    folder.mkdir()
    (folder / "big.bin").write_bytes(b"\0" * 50_000)
    archive = tar_of(folder)
    settings.PIPELINES_MAX_UPLOAD_BYTES = 10_000
    assert len(archive) < 10_000
    response = upload(client_for(editor), archive)
    assert response.status_code == 413
    assert "unpacks to more than 10000 bytes" in response.json()["detail"]
    assert not Artifact.objects.exists()


def add_link(name, target, kind=tarfile.SYMTYPE):
    def extra(tar):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        tar.addfile(info)
    return extra


def add_file(name, data=b"x"):
    def extra(tar):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return extra


@pytest.mark.parametrize("extra, says", [
    (add_link("passwd", "/etc/passwd"), "is a link or a special file"),
    (add_link("hard", "main.py", tarfile.LNKTYPE), "is a link or a special file"),
    (add_file("../escape.py"), "points outside the folder"),
    (add_file("/abs.py"), "points outside the folder"),
])
def test_links_and_paths_out_of_the_folder_are_refused(client_for, editor, source, extra,
                                                       says):
    response = upload(client_for(editor), tar_of(source, extra=extra))
    assert response.status_code == 400
    assert says in response.json()["errors"][0]["message"]
    assert not Artifact.objects.exists()


def test_a_body_that_is_not_an_archive_says_what_to_send(client_for, editor):
    client = client_for(editor)
    garbage = upload(client, b"not a tar at all")
    assert garbage.status_code == 400
    assert garbage.json()["errors"][0]["field"] == "body"
    empty = upload(client, b"")
    assert empty.status_code == 400 and "tar archive" in empty.json()["detail"]
    as_json = client.post("/api/artifacts/", data={"a": 1}, format="json")
    assert as_json.status_code == 415


def test_viewers_read_tokens_and_other_workspaces_cannot_upload(
        client_for, token_client, viewer, editor, outsider, workspace, source):
    assert upload(client_for(viewer), tar_of(source)).status_code == 403
    read_only = token_client(editor, workspace, scopes=["read"])
    assert upload(read_only, tar_of(source)).status_code == 403
    foreign = upload(client_for(outsider), tar_of(source), query=f"?workspace={workspace.pk}")
    assert foreign.status_code == 400 and foreign.json()["errors"][0]["field"] == "workspace"
    assert not Artifact.objects.exists()
    publisher = token_client(editor, workspace, scopes=["read", "publish"])
    digest = upload(publisher, tar_of(source)).json()["digest"]
    assert client_for(outsider).get(f"/api/artifacts/{digest}/").status_code == 404


def test_the_schema_documents_the_upload(client_for, viewer):
    schema = client_for(viewer).get("/api/schema/?format=json").json()
    post = schema["paths"]["/api/artifacts/"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/gzip", "application/x-tar",
                                                   "application/octet-stream"}
    assert {"200", "201"} <= set(post["responses"])


def snapshot_spec(digest: str, target: str = "local") -> dict:
    return {"parameters": {}, "edges": [], "nodes": [
        {"id": "main", "component": "python-script@1", "compute": target,
         "params": {"source": digest}}]}


def test_a_run_uses_only_snapshots_of_its_own_workspace(
        client_for, owner, outsider, workspace, other_workspace, local_target, source):
    digest = upload(client_for(owner), tar_of(source)).json()["digest"]
    assert upload(client_for(outsider), tar_of(source)).status_code == 201  # same folder there
    mine = Pipeline.objects.create(workspace=workspace, name="mine", spec=snapshot_spec(digest))
    response = client_for(owner).post(f"/api/pipelines/{mine.pk}/runs/", {}, format="json")
    assert response.status_code == 201, response.json()
    step = StepRun.objects.get(run=response.json()["id"])
    # The job names this workspace's copy (it was a 500: two artifacts matched the digest).
    assert build_job(step)["code"]["snapshot"]["uri"] == Artifact.objects.get(
        workspace=workspace, digest=digest).uri

    ComputeTarget.objects.create(workspace=other_workspace, name="theirs")
    unknown = "sha256:" + "0" * 64
    theirs = Pipeline.objects.create(workspace=other_workspace, name="theirs",
                                     spec=snapshot_spec(unknown, "theirs"))
    response = client_for(outsider).post(f"/api/pipelines/{theirs.pk}/runs/", {}, format="json")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["node"], error["field"]) == ("main", "params.source")
    assert "not in this workspace" in error["message"]
