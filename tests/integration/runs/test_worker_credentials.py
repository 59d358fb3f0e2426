"""S5: a worker's credential is scoped to exactly one step attempt and reads nothing else."""

import json
import subprocess
import sys

import psutil
import pytest
from rest_framework.test import APIClient

from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import step_token, submit_run
from pipelines_ui.runs.engine.dispatch import build_job
from pipelines_ui.runs.models import LogLine
from tests.integration.api.test_authentication_required import ALL, OWN_CREDENTIAL, PUBLIC
from tests.integration.runs.specs import script
from tests.support import ROOT, WorkerProcess, unique_target

DIGEST = "sha256:" + "ab" * 32
API_ROUTES = [(name, path) for name, path in ALL
              if path.startswith("/api/") and name not in PUBLIC | OWN_CREDENTIAL]


@pytest.fixture
def steps(workspace, local_target, owner):
    """Two independent steps of one run, both queued: a and b."""
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("a", "print('a')", target="local", outputs=["out"]),
        script("b", "print('b')", target="local")]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="two", spec=spec)
    run = submit_run(pipeline, user=owner)
    return run.steps.get(node="a"), run.steps.get(node="b")


def report(step_run_id, attempt_id, token, events):
    return APIClient().post(
        f"/api/worker/steps/{step_run_id}/events/", {"attempt_id": attempt_id, "events": events},
        format="json", headers={"Authorization": f"StepToken {token}"})


def started(seq=1):
    return {"type": "started", "seq": seq, "time": 1.0, "claim": "claim-a-12345678",
            "worker": "w", "pid": 1}


def log(seq, first=1, text="forged"):
    return {"type": "log", "seq": seq, "time": 1.0, "first": first,
            "lines": [{"stream": "stdout", "text": text, "time": 1.0}]}


def finished(seq):
    return {"type": "finished", "seq": seq, "time": 2.0, "exit_code": 0,
            "outputs": {"out": {"digest": DIGEST, "uri": "file:///x", "size": 1}}}


def test_a_steps_token_cannot_report_for_another_step(steps):
    a, b = steps
    token_a = step_token(a.pk, a.attempt_id)
    for events in ([started()], [log(1)], [{"type": "heartbeat", "seq": 1, "time": 1.0}]):
        response = report(b.pk, a.attempt_id, token_a, events)
        assert response.status_code == 403, response.content
        assert f"belongs to step run {a.pk}" in response.json()["detail"]
    b.refresh_from_db()
    assert (b.state, b.claim) == ("queued", "")
    assert not LogLine.objects.filter(step_run__in=steps).exists()


def test_a_token_that_is_simply_wrong_is_still_a_401(steps):
    a, b = steps
    assert report(b.pk, b.attempt_id, "0" * 64, [started()]).status_code == 401


def test_the_token_of_a_finished_attempt_is_spent(steps):
    a, _ = steps
    token = step_token(a.pk, a.attempt_id)
    assert report(a.pk, a.attempt_id, token, [started(), log(2)]).status_code == 200
    assert report(a.pk, a.attempt_id, token, [finished(3)]).status_code == 200
    for events in ([{"type": "heartbeat", "seq": 4, "time": 1.0}], [log(4, first=2)],
                   [log(4, first=2), finished(5)]):
        response = report(a.pk, a.attempt_id, token, events)
        assert response.status_code == 401, (events, response.content)
        assert "expired" in response.json()["detail"]
        assert response.json()["finished"] is True  # the worker logs this at INFO (R3)
    assert list(LogLine.objects.filter(step_run=a).values_list("text", flat=True)) == ["forged"]
    # A worker whose reply got lost sends its final event again: a duplicate, not an error.
    assert report(a.pk, a.attempt_id, token, [finished(3)]).status_code == 200


@pytest.mark.parametrize(("name", "path"), API_ROUTES, ids=[p for _, p in API_ROUTES])
def test_a_worker_credential_opens_no_other_api_route(steps, name, path):
    a, _ = steps
    for header in (f"StepToken {step_token(a.pk, a.attempt_id)}", "WorkerKey pwk_local_x"):
        client = APIClient(headers={"Authorization": header})
        for method in ("get", "post"):
            response = getattr(client, method)(path, {}, format="json")
            assert response.status_code == 403, (method, path, response.status_code)
            assert "worker's credential" in response.json()["detail"]


def test_a_step_job_carries_no_database_credentials(steps, settings):
    a, _ = steps
    job = json.dumps(build_job(a))
    database = settings.DATABASES["default"]
    for value in (database["NAME"], database.get("PASSWORD"), "postgres://", "sqlite"):
        if value:
            assert str(value) not in job


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_worker_holds_no_database_url_in_its_environment_or_config(live_server):
    url = "postgres://pipelines:db-password-never-on-workers@db.example:5432/pipes"
    worker = WorkerProcess(unique_target(), live_server.url, extra_env={"DATABASE_URL": url})
    try:
        pids = worker.pids()
        assert len(pids) >= 2  # the main process and its pool child
        for pid in pids:
            environ = psutil.Process(pid).environ()
            assert "DATABASE_URL" not in environ
            assert not [k for k, v in environ.items() if "db-password" in v or "postgres" in v]
    finally:
        worker.stop()
    probe = ("import json; from runner.celery_app import app; "
             "print(json.dumps({k: repr(v) for k, v in app.conf.items()}))")
    env = {"PATH": "/usr/bin:/bin", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    config = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(config)["result_backend"] == "None"
    assert "postgres" not in config and "sqlite" not in config
