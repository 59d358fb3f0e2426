"""S4: a dump of the database holds no usable credential: API tokens and worker keys are
stored as hashes, step tokens not at all (they are derived from the server's key). S17:
workspace secrets are stored encrypted with a key the database does not hold."""

import shutil
import subprocess

import pytest
from django.db import connection

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import step_token, submit_run
from tests.integration.api.conftest import two_steps


def dump_database() -> str:
    settings_dict = connection.settings_dict
    command = ["pg_dump", "--data-only", "-h", settings_dict["HOST"] or "127.0.0.1",
               "-p", str(settings_dict["PORT"] or 5432), "-U", settings_dict["USER"],
               settings_dict["NAME"]]
    env = {"PGPASSWORD": settings_dict.get("PASSWORD") or "", "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                          check=True).stdout


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs pg_dump")
def test_a_database_dump_holds_no_token_key_or_step_token(transactional_db, client_for,
                                                          owner, workspace):
    if connection.vendor != "postgresql":
        pytest.skip("pg_dump needs PostgreSQL")
    response = client_for(owner).post("/api/tokens/", {"name": "ci", "scopes": ["read"]},
                                      format="json")
    assert response.status_code == 201
    key = response.json()["key"]
    target = ComputeTarget.objects.create(workspace=workspace, name="local")
    worker_key = issue_worker_key(target)
    pipeline = Pipeline.objects.create(workspace=workspace, name="p", spec=two_steps())
    step = submit_run(pipeline, user=owner).steps.get(node="prep")
    dump = dump_database()
    assert response.json()["prefix"] in dump  # the dump does hold the token's row
    for secret in (key.split("_", 2)[2], worker_key.split("_", 2)[2],
                   step_token(step.pk, step.attempt_id)):
        assert secret not in dump


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs pg_dump")
def test_a_database_dump_holds_no_secret_value(transactional_db, client_for, owner, workspace):
    if connection.vendor != "postgresql":
        pytest.skip("pg_dump needs PostgreSQL")
    value = "workspace-secret-value-5e6f7a"
    client = client_for(owner)
    created = client.post("/api/secrets/", {"name": "API_KEY", "value": value,
                                            "workspace": workspace.pk}, format="json")
    assert created.status_code == 201
    changed = client.patch(f"/api/secrets/{created.json()['id']}/", {"value": value + "-2"},
                           format="json")
    assert changed.status_code == 200
    dump = dump_database()
    assert "API_KEY" in dump  # the dump does hold the secret's row
    assert value not in dump
