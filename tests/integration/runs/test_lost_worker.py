"""A worker killed mid-step never leaves its run running forever (R2)."""

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, submit_run
from pipelines_ui.runs.models import LogLine, Run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SLOW_THEN_DONE = """
    import time
    from runner import context
    if context.attempt() == 1:
        time.sleep(1000)
    print('done on attempt', context.attempt())
    """


@pytest.fixture
def fast_loss(settings):
    settings.STEP_LOST_AFTER_S = 3


def running_step(run: Run):
    return wait_until(lambda: run.steps.filter(state="running").first(), timeout=60)


def finished(run: Run) -> Run:
    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_until(done, timeout=90, tick=reconcile_once)
    return run


def test_a_killed_worker_fails_its_step_when_no_retry_is_left(engine, fast_loss, workspace,
                                                             owner):
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url, name="doomed")
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("slow", SLOW_THEN_DONE, target=name, allow_reuse=False)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="lost", spec=spec)
        run = submit_run(pipeline, user=owner)
        running_step(run)
        worker.kill()
        run = finished(run)
    finally:
        worker.stop()
    step = run.steps.get()
    assert (run.status, step.state) == ("failed", "failed")
    assert "worker lost" in step.error
    assert LogLine.objects.filter(step_run=step, stream="system",
                                  text__contains="lost").exists()


def test_a_killed_worker_is_retried_on_another_worker(engine, fast_loss, workspace, owner):
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    workers = {n: WorkerProcess(name, engine.url, name=n) for n in ("first", "second")}
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("slow", SLOW_THEN_DONE, target=name, allow_reuse=False, retries=1)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="retried", spec=spec)
        run = submit_run(pipeline, user=owner)
        holder = running_step(run).worker
        workers[holder].kill()
        run = finished(run)
    finally:
        for worker in workers.values():
            worker.stop()
    step = run.steps.get()
    assert (run.status, step.state, step.attempt) == ("succeeded", "succeeded", 2)
    assert step.worker != holder
    assert step.attempts[0]["attempt"] == 1 and "worker lost" in step.attempts[0]["error"]
    assert LogLine.objects.filter(step_run=step, text="done on attempt 2").exists()
