"""S9: resource use is bounded, and over-limit requests get a clear JSON 4xx."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.pipelines import services
from pipelines_ui.runs.engine import cancel_run
from pipelines_ui.runs.models import Run


@pytest.fixture
def endpoint(pipeline):
    version = services.publish_version(pipeline, message="v1")
    return services.create_endpoint(pipeline, name="score", version=version)


def key_for(owner, workspace, scopes=("run",)):
    return ApiToken.issue(workspace, owner, "limits", list(scopes))[1]


def test_a_3_mb_spec_gets_a_json_413_naming_the_limit(client_for, owner, workspace, settings):
    body = json.dumps({"name": "big", "workspace": workspace.pk,
                       "spec": {"nodes": [], "description": "x" * 3_000_000}})
    response = client_for(owner).post("/api/pipelines/", body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert f"limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes" in response.json()["detail"]


def test_a_10001_node_spec_gets_a_400_naming_the_limit(client_for, owner, workspace):
    spec = {"parameters": {}, "edges": [],
            "nodes": [{"id": f"n{i}", "component": "python-script@1"} for i in range(10_001)]}
    response = client_for(owner).post("/api/pipelines/", {"name": "huge", "spec": spec,
                                                          "workspace": workspace.pk},
                                      format="json")
    assert response.status_code == 400, response.content[:300]
    errors = response.json()["errors"]
    assert {"node": None, "field": "spec.nodes",
            "message": "the spec has 10001 nodes; the limit is 1000"} in errors


def trigger(client, endpoint):
    return client.post(f"/api/endpoints/{endpoint.name}/runs/", {"parameters": {}},
                       format="json")


@pytest.mark.timeout(120)
def test_100_concurrent_triggers_against_a_limit_of_10_start_at_most_10_runs(
        live_server, transactional_db, workspace, owner, endpoint, settings):
    settings.PIPELINES_TRIGGER_RATE = 10
    key = key_for(owner, workspace)
    url = f"{live_server.url}/api/endpoints/{endpoint.name}/runs/"
    # 25 at a time, not 100: each request holds a database connection, and the PostgreSQL
    # the suite shares allows 100. 25 requests released together still race any counter
    # that reads, compares and writes.
    gate = threading.Barrier(25)

    def call(i):
        if i < 25:
            gate.wait()
        return httpx.post(url, json={"parameters": {}}, timeout=60,
                          headers={"Authorization": f"Token {key}"})

    with ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(call, range(100)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 429}, codes
    assert Run.objects.filter(endpoint=endpoint).count() == codes.count(201) <= 10
    refused = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Content-Type"] == "application/json"
    assert "the limit is 10 per minute for this caller" in refused.json()["detail"]
    assert "PIPELINES_TRIGGER_RATE" in refused.json()["detail"]


def test_an_endpoint_has_its_own_budget_whoever_calls_it(token_client, owner, workspace,
                                                          endpoint, settings):
    settings.PIPELINES_TARGET_TRIGGER_RATE = 3
    codes = [trigger(token_client(owner, workspace, ["run"]), endpoint).status_code
             for _ in range(5)]  # a new token each time
    assert codes == [201, 201, 201, 429, 429]
    assert Run.objects.filter(endpoint=endpoint).count() == 3


def test_the_limit_holds_on_redis_and_when_redis_is_down(
        token_client, owner, workspace, endpoint, settings):
    for redis_url in (settings.REDIS_URL, "redis://127.0.0.1:1/0"):  # then one that is down
        settings.REDIS_URL = redis_url
        client = token_client(owner, workspace, ["run"])
        settings.PIPELINES_TRIGGER_RATE = 2
        codes = [trigger(client, endpoint).status_code for _ in range(4)]
        assert codes == [201, 201, 429, 429], redis_url


def test_runs_not_finished_are_capped_per_endpoint(token_client, owner, workspace, endpoint,
                                                   settings):
    settings.PIPELINES_MAX_ACTIVE_RUNS = 2
    client = token_client(owner, workspace, ["run"])
    assert [trigger(client, endpoint).status_code for _ in range(2)] == [201, 201]
    refused = trigger(client, endpoint)
    assert refused.status_code == 429
    assert "PIPELINES_MAX_ACTIVE_RUNS is 2" in refused.json()["detail"]
    assert refused["Retry-After"]
    cancel_run(Run.objects.filter(endpoint=endpoint).first().pk)  # nothing runs: ends at once
    assert trigger(client, endpoint).status_code == 201


def test_pipeline_runs_are_limited_too(client_for, owner, pipeline, settings):
    settings.PIPELINES_TRIGGER_RATE = 1
    client = client_for(owner)
    codes = [client.post(f"/api/pipelines/{pipeline.pk}/runs/", {}, format="json").status_code
             for _ in range(2)]
    assert codes == [201, 429]
