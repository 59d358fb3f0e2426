"""Run by tests/reliability/test_broker_restart.py with CELERY_BROKER_URL on a private Redis
that keeps nothing across a restart, at the default STEP_QUEUED_TIMEOUT_S."""

import os
import subprocess
import time

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, submit_run
from pipelines_ui.runs.models import StepRun
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, start_private_redis, unique_target, wait_until

PORT = os.environ["PRIVATE_REDIS_PORT"]
QUEUED = 20
WITHIN_S = 30


@pytest.fixture
def redis():
    holder = {"server": start_private_redis(PORT)}
    yield holder
    holder["server"].terminate()
    holder["server"].wait()


def run_of(workspace, owner, name, nodes):
    pipeline = Pipeline.objects.create(workspace=workspace, name=name,
                                       spec={"parameters": {}, "edges": [], "nodes": nodes})
    return submit_run(pipeline, user=owner)


def test_queued_steps_run_soon_after_the_broker_restarts(redis, engine, workspace, owner,
                                                         settings, tmp_path):
    assert settings.STEP_QUEUED_TIMEOUT_S == 300  # the default: a resend after Q is far away
    target = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=target)
    gate = tmp_path / "gate"
    # One slot, held by the gate until the restart. The gate is a file outside the step's
    # folder, where a confined step cannot look (S11): this worker leaves steps unconfined.
    worker = WorkerProcess(target, engine.url,
                           extra_env={"PIPELINES_STEP_ISOLATION": "none"})
    try:
        gated = run_of(workspace, owner, "gate", [script(
            "gate", f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.1)",
            target=target, allow_reuse=False)])
        wait_until(lambda: gated.steps.filter(state="running").exists(), timeout=60)
        reconcile_once()  # the reconciler has seen this broker's start
        queued = run_of(workspace, owner, "queued", [
            script(f"s{i}", f"print('step {i}')", target=target, allow_reuse=False)
            for i in range(QUEUED)])
        steps = StepRun.objects.filter(run=queued)
        wait_until(lambda: steps.filter(state="queued", dispatched_at__isnull=False).count()
                   == QUEUED, timeout=30)

        subprocess.run(["redis-cli", "-p", PORT, "shutdown", "nosave"], capture_output=True)
        redis["server"].wait()
        redis["server"] = start_private_redis(PORT)
        back = time.monotonic()
        gate.touch()

        def all_ran():
            return steps.filter(state="succeeded").count() == QUEUED

        wait_until(all_ran, timeout=WITHIN_S + 30, interval=0.5, tick=reconcile_once)
        took = time.monotonic() - back
    finally:
        gate.touch()
        worker.stop()
    print(f"\n{QUEUED} queued steps ran within {took:.1f} s of the broker coming back")
    assert took < WITHIN_S
    assert all("the broker restarted" in " ".join(step.log_lines.values_list("text", flat=True))
               for step in steps)
