"""From the outside, over HTTP: author, publish, invoke with a token, follow, download.

httpx against the live server, with a real compute worker process (tests/support.py), as an
outside system would use the product.
"""

import io
import zipfile
from textwrap import dedent

import httpx
import pytest

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.runs.engine import reconcile_once
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def spec(target: str, factor: int) -> dict:
    code = dedent(f"""
        from runner import context
        n = context.param('n')
        (context.output_path('out') / 'value.txt').write_text(str(n * {factor}))
        print('wrote', n * {factor})
        """)
    return {
        "parameters": {"n": {"type": "int", "default": 1}},
        "nodes": [{"id": "make", "component": "python-script@1", "compute": target,
                   "params": {"code": code, "n": "${n}"},
                   "ports": {"outputs": [{"name": "out", "type": "any"}]}}],
        "edges": [],
    }


@pytest.fixture
def server(settings, live_server, transactional_db):
    settings.PIPELINES_SERVER_URL = live_server.url
    settings.STEP_HEARTBEAT_S = 0.5
    return live_server


@pytest.fixture
def target(server, workspace):
    name = unique_target()
    compute = ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, server.url, key=issue_worker_key(compute))
    yield name
    worker.stop()


def client(server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Token {key}"},
                        timeout=30)


def follow(api: httpx.Client, run_id: int) -> dict:
    def finished():
        run = api.get(f"/api/runs/{run_id}/").raise_for_status().json()
        return run if run["status"] in ("succeeded", "failed", "canceled") else None

    # The reconciler ticks as beat would: it resends a job the broker refused under load (R5).
    return wait_until(finished, timeout=120, interval=0.3, tick=reconcile_once)


def output(api: httpx.Client, run: dict) -> str:
    digest = run["steps"][0]["outputs"]["out"]
    response = api.get(f"/api/artifacts/{digest}/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content)).read("value.txt").decode()


def test_a_published_pipeline_runs_from_its_endpoint_and_republishing_switches_version(
        server, target, owner, workspace):
    _t, publish_key = ApiToken.issue(workspace, owner, "ci", ["read", "publish"])
    _t, invoke_key = ApiToken.issue(workspace, owner, "partner",
                                    ["read", "endpoint:invoke:double"])
    author, partner = client(server, publish_key), client(server, invoke_key)

    pipeline = author.post("/api/pipelines/", json={"name": "doubler", "spec": spec(target, 2)})
    assert pipeline.status_code == 201, pipeline.text
    pipeline_id = pipeline.json()["id"]
    assert author.post(f"/api/pipelines/{pipeline_id}/versions/",
                       json={"message": "doubles"}).json()["number"] == 1
    endpoint = author.post("/api/endpoints/", json={"pipeline": pipeline_id, "name": "double"})
    assert endpoint.status_code == 201, endpoint.text

    started = partner.post("/api/endpoints/double/runs/", json={"parameters": {"n": 21}})
    assert started.status_code == 201, started.text
    run = follow(partner, started.json()["id"])
    assert run["status"] == "succeeded", run["steps"]
    assert (run["version"], run["trigger"], run["triggered_by"]) == (1, "endpoint", "owner")
    assert run["token"] is not None
    assert output(partner, run) == "42"
    logs = partner.get(f"/api/runs/{run['id']}/steps/make/logs/").json()["lines"]
    assert "wrote 42" in [line["text"] for line in logs]

    # Republish: a new version, then the endpoint's default switches to it in one call.
    draft = author.get(f"/api/pipelines/{pipeline_id}/").json()
    saved = author.patch(f"/api/pipelines/{pipeline_id}/",
                         json={"spec": spec(target, 10), "revision": draft["revision"]})
    assert saved.status_code == 200 and saved.json()["valid"]
    assert author.post(f"/api/pipelines/{pipeline_id}/versions/",
                       json={"message": "times ten"}).json()["number"] == 2
    assert author.patch("/api/endpoints/double/", json={"default_version": 2}).json()[
        "default_version"] == 2

    again = follow(partner, partner.post("/api/endpoints/double/runs/",
                                         json={"parameters": {"n": 21}}).json()["id"])
    assert again["status"] == "succeeded" and again["version"] == 2
    assert output(partner, again) == "210"

    # The partner's token does what it was given and nothing more.
    assert partner.post(f"/api/pipelines/{pipeline_id}/versions/", json={}).status_code == 403
    assert partner.post(f"/api/pipelines/{pipeline_id}/runs/", json={}).status_code == 403
