"""S6, S7: a step gets the secrets its node declared, and their values never reach its log.
S17: it still gets them after the key that encrypts them at rest was rotated."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.secrets.models import Secret
from runner.executor.launch import LAUNCH_MODES
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(120)

DECLARED = "declared-secret-value-0f1e2d"
UNDECLARED = "undeclared-secret-value-3c4b5a"
ECHO = """
    import os
    key = os.environ['API_KEY']
    print('the key is', key)
    print('reversed', key[::-1])  # not masked: masking matches the value itself
    print('other is', os.environ.get('OTHER_KEY'))
    print('in the environment:', sorted(os.environ))
    """


@pytest.mark.parametrize("launch_mode", LAUNCH_MODES)
def test_a_step_sees_only_its_declared_secrets_and_its_log_shows_them_masked(
        engine, workspace, owner, launch_mode):
    Secret.objects.create(workspace=workspace, name="API_KEY", value=DECLARED)
    Secret.objects.create(workspace=workspace, name="OTHER_KEY", value=UNDECLARED)
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url, extra_env={"PIPELINES_STEP_LAUNCH": launch_mode})
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("echo", ECHO, target=name, allow_reuse=False, secrets=["API_KEY"])]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="secrets", spec=spec)
        run = submit_run(pipeline, user=owner)
        wait_until(lambda: run.steps.filter(state__in=("succeeded", "failed")).exists(),
                   timeout=60)
    finally:
        worker.stop()
    step = run.steps.get()
    assert step.state == "succeeded", step.error
    lines = list(step.log_lines.values_list("text", flat=True))
    assert "the key is ***" in lines
    assert f"reversed {DECLARED[::-1]}" in lines  # the step did read the real value
    assert "other is None" in lines
    everything = "\n".join(lines) + step.error + step.traceback
    assert DECLARED not in everything
    assert UNDECLARED not in everything and "OTHER_KEY'" not in everything


def test_a_step_gets_its_secret_after_a_key_rotation_and_the_old_key_removed(
        engine, workspace, owner, settings):
    old_key, new_key = (Fernet.generate_key().decode() for _ in range(2))
    settings.PIPELINES_SECRETS_KEY = old_key
    Secret.objects.create(workspace=workspace, name="API_KEY", value=DECLARED)
    settings.PIPELINES_SECRETS_KEY = f"{new_key},{old_key}"  # the new key first
    call_command("rotate_secrets_key", stdout=StringIO())
    settings.PIPELINES_SECRETS_KEY = new_key  # the old key removed
    stored = Secret.objects.values_list("encrypted_value", flat=True).get()
    assert Fernet(new_key).decrypt(stored.encode()).decode() == DECLARED
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url)
    try:
        code = "import os\nprint('reversed', os.environ['API_KEY'][::-1])"
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("echo", code, target=name, allow_reuse=False, secrets=["API_KEY"])]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="rotated", spec=spec)
        run = submit_run(pipeline, user=owner)
        wait_until(lambda: run.steps.filter(state__in=("succeeded", "failed")).exists(),
                   timeout=60)
    finally:
        worker.stop()
    step = run.steps.get()
    assert step.state == "succeeded", step.error
    assert f"reversed {DECLARED[::-1]}" in step.log_lines.values_list("text", flat=True)
