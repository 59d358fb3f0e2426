"""S12: no JSON body can crash the server.

Every operation of the API schema that takes a JSON body is sent a body nested 1000 deep (which
exhausts the stack of a recursive parser) and a malformed one: each is a 400 whose message says
which. The worker routes check their credential before they read the body, so without one the
same bodies are a 401 (a malformed body too: proof it was never parsed).
"""

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.data.models import Artifact, Dataset
from pipelines_ui.json_body import MAX_DEPTH, BodyInvalid, loads
from pipelines_ui.pipelines import services
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.registry.services import deploy_version, register_model_version
from pipelines_ui.runs.engine import step_token, submit_run
from pipelines_ui.secrets.models import Secret
from tests.integration.api.conftest import ALL_SCOPES, two_steps

BODIES = {"deep": "[" * 1000 + "]" * 1000, "malformed": '{"name": '}
SAYS = {"deep": f"nested deeper than {MAX_DEPTH} levels", "malformed": "not valid JSON"}


def json_operations() -> list[tuple[str, str]]:
    """(method, path template) of every operation whose request body is JSON."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted((method, path) for path, operations in schema["paths"].items()
                  for method, operation in operations.items()
                  if "application/json" in operation.get("requestBody", {}).get("content", {}))


OPERATIONS = json_operations()
MEMBER = [(m, p) for m, p in OPERATIONS if not p.startswith("/api/worker/")]
WORKER = [(m, p) for m, p in OPERATIONS if p.startswith("/api/worker/")]


@pytest.fixture
def objects(workspace, owner, local_target):
    """One of each object a JSON route names in its path, and clients for a member."""
    pipeline = Pipeline.objects.create(workspace=workspace, name="p", spec=two_steps())
    endpoint = services.create_endpoint(pipeline, name="score",
                                        version=services.publish_version(pipeline))
    schedule = services.create_schedule(endpoint, name="s", cron="0 * * * *")
    run = submit_run(pipeline, user=owner)
    artifact = Artifact.objects.create(workspace=workspace, digest="sha256:" + "ef" * 32,
                                       uri="file:///nowhere/ef")
    deploy_version(register_model_version(workspace.pk, "diabetes", artifact=artifact))
    token, key = ApiToken.issue(workspace, owner, "bodies", ALL_SCOPES)
    ids = {
        "pipelines": pipeline.pk, "compute-targets": local_target.pk, "runs": run.pk,
        "schedules": schedule.pk, "tokens": token.pk,
        "datasets": Dataset.objects.create(workspace=workspace, name="d").pk,
        "secrets": Secret.objects.create(workspace=workspace, name="K", value="v").pk,
    }
    session = Client()
    session.force_login(owner)
    step = run.steps.get(node="prep")
    return {
        "ids": ids, "endpoint": endpoint.name, "model": "diabetes", "step": step,
        "token": Client(headers={"Authorization": f"Token {key}"}), "session": session,
        "step_token": step_token(step.pk, step.attempt_id),
        "worker_key": issue_worker_key(local_target),
    }


def concrete(path: str, objects) -> str:
    """The path template with the id or name of a real object in each parameter."""
    collection = path.split("/")[2]
    name = objects["model"] if collection == "models" else objects["endpoint"]
    return (path.replace("{id}", str(objects["ids"].get(collection, 0)))
            .replace("{name}", name).replace("{number}", "1")
            .replace("{step_run_id}", str(objects["step"].pk)))


def send(client, method: str, path: str, body: str, **headers):
    return getattr(client, method)(path, body, content_type="application/json", headers=headers)


def as_member(objects, method: str, path: str, body: str):
    """With the member's token; where the route takes sessions only, with the session."""
    response = send(objects["token"], method, path, body)
    if response.status_code == 403 and "signed-in session" in response.json()["detail"]:
        response = send(objects["session"], method, path, body)
    return response


def test_the_walk_finds_the_json_routes_and_the_worker_routes():
    assert ("post", "/api/pipelines/") in MEMBER and ("patch", "/api/runs/{id}/") in MEMBER
    assert len(MEMBER) > 20
    assert [p for _m, p in WORKER] == ["/api/worker/heartbeat/",
                                       "/api/worker/steps/{step_run_id}/events/"]


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize(("method", "path"), MEMBER, ids=[f"{m} {p}" for m, p in MEMBER])
def test_a_deep_or_malformed_body_is_a_400_that_says_which(objects, method, path, body):
    response = as_member(objects, method, concrete(path, objects), BODIES[body])
    assert response.status_code == 400, (method, path, response.status_code, response.content)
    assert SAYS[body] in response.json()["detail"]
    assert response.json()["errors"] == []


def worker_credential(path: str, objects) -> str:
    if "heartbeat" in path:
        return f"WorkerKey {objects['worker_key']}"
    return f"StepToken {objects['step_token']}"


WRONG = {"none": "", "wrong step token": "StepToken x." + "0" * 64,
         "wrong worker key": "WorkerKey pwk_local_wrong"}


@pytest.mark.parametrize("credential", sorted(WRONG))
@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("path", [p for _m, p in WORKER])
def test_a_worker_route_refuses_a_caller_without_its_credential_before_reading(
        objects, path, body, credential):
    headers = {"Authorization": WRONG[credential]} if WRONG[credential] else {}
    response = send(Client(), "post", concrete(path, objects), BODIES[body], **headers)
    assert response.status_code == 401, (path, response.status_code, response.content)
    assert "JSON" not in response.json()["detail"]


def test_another_step_runs_token_is_a_403_before_the_body_is_read(objects, owner):
    other = submit_run(objects["step"].run.pipeline, user=owner).steps.get(node="prep")
    path = f"/api/worker/steps/{objects['step'].pk}/events/"
    response = send(Client(), "post", path, BODIES["malformed"],
                    Authorization=f"StepToken {step_token(other.pk, other.attempt_id)}")
    assert response.status_code == 403, response.content
    assert f"belongs to step run {other.pk}" in response.json()["detail"]


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("path", [p for _m, p in WORKER])
def test_a_worker_with_its_credential_gets_a_400_that_says_which(objects, path, body):
    response = send(Client(), "post", concrete(path, objects), BODIES[body],
                    Authorization=worker_credential(path, objects))
    assert response.status_code == 400, (path, response.status_code, response.content)
    assert SAYS[body] in response.json()["detail"]


def test_the_depth_limit_is_exact_and_brackets_in_strings_do_not_count():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(BodyInvalid, match="nested deeper"):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    text = '{"code": "' + "[{" * 5000 + '\\"[", "k": ["\\\\"]}'
    assert loads(text)["code"].startswith("[{[{")
    with pytest.raises(BodyInvalid, match="not valid JSON"):
        loads('{"x": NaN}')
    with pytest.raises(BodyInvalid, match="not UTF-8"):
        loads(b'{"x": "\xff"}')
