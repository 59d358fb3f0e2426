"""S16: no API answer or page shows where the server stores things.

After a real pipeline has run on a real worker (its artifacts written to the server's datastore
under the var folder), a member, workspace admin included, GETs every route of the API schema
(lists, and each detail with the id of a real object) and every page that shows those objects:
no answer holds the var folder, the datastore's folder, or its `file://` URL. Artifacts are named
by digest and downloaded through the server; datastores are named, never located.
"""

from pathlib import Path

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.data.models import Artifact, Dataset, Datastore
from pipelines_ui.data.services import add_dataset_version
from pipelines_ui.pipelines import services
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.registry.services import register_model_version
from pipelines_ui.runs import previews
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.secrets.models import Secret
from tests.integration.runs.specs import diamond
from tests.support import wait_until


def readable_paths() -> list[str]:
    """Every GET route of the API schema, as a template."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(path for path, operations in schema["paths"].items() if "get" in operations)


READABLE = readable_paths()


@pytest.fixture
def world(workspace, owner, viewer, target, settings):
    """A finished diamond run in a workspace whose datastore is the server's own folder, and
    one object of every other kind a GET route names."""
    store = Datastore.objects.create(workspace=workspace, name="default", is_default=True,
                                     url=settings.DATASTORE_URL)
    pipeline = Pipeline.objects.create(workspace=workspace, name="diamond",
                                       spec=diamond(target.name))
    endpoint = services.create_endpoint(pipeline, name="score",
                                        version=services.publish_version(pipeline))
    schedule = services.create_schedule(endpoint, name="s", cron="0 * * * *")
    run = submit_run(pipeline, user=owner)
    wait_until(lambda: run.refresh_from_db() or run.is_finished, timeout=90)
    assert run.status == "succeeded"
    digest = run.steps.get(node="d").outputs["out"]
    artifact = Artifact.objects.get(workspace=workspace, digest=digest)
    assert artifact.uri.startswith("file://")  # stored in the server's folder
    dataset = Dataset.objects.create(workspace=workspace, name="totals")
    add_dataset_version(dataset, artifact=artifact)
    register_model_version(workspace.pk, "m", artifact=artifact)
    token = {role: ApiToken.issue(workspace, user, "t", ["read"])[0]
             for role, user in (("viewer", viewer), ("admin", owner))}
    ids = {"pipelines": pipeline.pk, "runs": run.pk, "datasets": dataset.pk,
           "datastores": store.pk, "compute-targets": target.pk, "workspaces": workspace.pk,
           "schedules": schedule.pk,
           "secrets": Secret.objects.create(workspace=workspace, name="K", value="v").pk}
    return {"ids": ids, "token": token, "digest": digest, "run": run, "pipeline": pipeline,
            "endpoint": endpoint.name, "model": "m"}


def concrete(path: str, world, role: str) -> str:
    """The route with a real object's id, digest or name in each parameter."""
    collection = path.split("/")[2]
    ids = {**world["ids"], "tokens": world["token"][role].pk}
    names = {"endpoints": world["endpoint"], "models": world["model"]}
    filled = (path.replace("{digest}", world["digest"]).replace("{number}", "1")
              .replace("{node}", "d").replace("{name}", names.get(collection, "")))
    if "{id}" in filled:
        filled = filled.replace("{id}", str(ids[collection]))
    assert "{" not in filled, f"add the parameters of {path} to concrete()"
    return filled


def pages(world) -> list[str]:
    run, pipeline, digest = world["run"].pk, world["pipeline"].pk, world["digest"]
    return ["/", "/pipelines/", f"/pipelines/{pipeline}/edit/",
            f"/pipelines/{pipeline}/versions/1/", "/models/", "/runs/", f"/runs/{run}/",
            f"/runs/compare/?runs={run}", f"/runs/{run}/artifacts/{digest}/",
            f"/runs/{run}/steps/d/log.txt", "/compute/", "/compute/status/"]


def location_in(body: bytes, settings) -> str | None:
    """The first sign of a storage location in `body`, or None. (A bare `file://` is no
    sign: component descriptions give `file:///srv/data.csv` as an example of a source.)"""
    text = body.decode("utf-8", errors="replace")
    store = Path(settings.DATASTORE_URL.removeprefix("file://"))
    for sign in (settings.DATASTORE_URL, str(settings.VAR_DIR), str(store), str(store.resolve()),
                 str(Path(settings.VAR_DIR).resolve())):
        if sign in text:
            return sign
    return None


def test_the_walk_covers_artifacts_and_datastores():
    assert {"/api/artifacts/", "/api/artifacts/{digest}/", "/api/datastores/",
            "/api/datastores/{id}/"} <= set(READABLE)


@pytest.mark.parametrize("role", ["viewer", "admin"])
@pytest.mark.slow  # `world` runs a real pipeline
@pytest.mark.timeout(180)
def test_no_answer_or_page_shows_a_storage_location(world, role, viewer, owner, settings):
    session = Client()
    session.force_login(viewer if role == "viewer" else owner)
    paths = [concrete(p, world, role) for p in READABLE]
    paths += [f"/api/artifacts/?run={world['run'].pk}", *pages(world)]
    for path in paths:
        response = session.get(path)
        assert response.status_code == 200, (path, response.status_code)
        body = b"".join(response) if response.streaming else response.content
        assert location_in(body, settings) is None, (path, location_in(body, settings))


@pytest.mark.slow  # `world` runs a real pipeline
@pytest.mark.timeout(180)
def test_downloads_still_work_by_digest(world, viewer):
    session = Client()
    session.force_login(viewer)
    response = session.get(f"/api/artifacts/{world['digest']}/?path=value.txt")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"31"
    listed = session.get(f"/api/artifacts/?run={world['run'].pk}").json()["results"]
    assert world["digest"] in {a["digest"] for a in listed}
    assert not any("uri" in a for a in listed)
    store = session.get("/api/datastores/").json()["results"][0]
    assert store["name"] == "default" and "url" not in store


def test_a_download_that_fails_does_not_say_where_it_looked(client_for, viewer, workspace,
                                                            settings):
    # A row whose URI does not match its digest: the datastore's error names the URI.
    uri = f"{settings.DATASTORE_URL}/artifacts/{'0' * 64}"
    digest = "sha256:" + "e" * 64
    Artifact.objects.create(workspace=workspace, digest=digest, uri=uri)
    response = client_for(viewer).get(f"/api/artifacts/{digest}/")
    assert response.status_code == 404
    assert response.json()["detail"] == f"Artifact {digest} is no longer in its datastore."


def test_a_preview_that_fails_does_not_say_where_it_looked(workspace, settings):
    # The run page's artifact preview reads the same rows: its 404 names the digest only.
    digest = "sha256:" + "e" * 64
    artifact = Artifact.objects.create(workspace=workspace, digest=digest,
                                       uri=f"{settings.DATASTORE_URL}/artifacts/{'0' * 64}")
    with pytest.raises(FileNotFoundError) as failed:
        previews.list_files(artifact)
    assert str(failed.value) == f"artifact {digest} is no longer in its datastore"
