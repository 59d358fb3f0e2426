"""Run by tests/reliability/test_broker_outage.py with CELERY_BROKER_URL on a private Redis."""

import os
import subprocess
import time

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, submit_run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, start_private_redis, unique_target, wait_until

PORT = os.environ["PRIVATE_REDIS_PORT"]


@pytest.fixture
def redis():
    server = start_private_redis(PORT)
    holder = {"server": server}
    yield holder
    holder["server"].terminate()
    holder["server"].wait()


def test_submit_while_the_broker_is_down(redis, engine, workspace, owner):
    target = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=target)
    worker = WorkerProcess(target, engine.url)
    try:
        subprocess.run(["redis-cli", "-p", PORT, "shutdown", "nosave"], capture_output=True)
        redis["server"].wait()
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("hello", "print('hello after the outage')", target=target)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="outage", spec=spec)
        started = time.monotonic()
        run = submit_run(pipeline, user=owner)
        assert time.monotonic() - started < 15  # answers, not hangs
        step = run.steps.get()
        assert (run.status, step.state, step.dispatched_at) == ("queued", "queued", None)

        redis["server"] = start_private_redis(PORT)

        def done():
            run.refresh_from_db()
            return run.is_finished

        wait_until(done, timeout=90, interval=0.5, tick=reconcile_once)
        assert run.status == "succeeded"
        assert run.steps.get().log_lines.filter(text="hello after the outage").exists()
    finally:
        worker.stop()


def run_hello(workspace, owner, target, name):
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("hello", f"print('hello {name}')", target=target, allow_reuse=False)]}
    pipeline = Pipeline.objects.create(workspace=workspace, name=name, spec=spec)
    return submit_run(pipeline, user=owner)


def all_succeed(runs) -> bool:
    for run in runs:
        run.refresh_from_db()
    return all(run.status == "succeeded" for run in runs)


def test_workers_keep_consuming_after_a_restart_and_a_reset(redis, engine, workspace, owner):
    target = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=target)
    worker = WorkerProcess(target, engine.url)
    try:
        pids = worker.worker_pids()
        first = [run_hello(workspace, owner, target, "before")]
        wait_until(lambda: all_succeed(first), timeout=60)

        subprocess.run(["redis-cli", "-p", PORT, "shutdown", "nosave"], capture_output=True)
        redis["server"].wait()
        redis["server"] = start_private_redis(PORT)
        runs = [run_hello(workspace, owner, target, f"after-restart-{i}") for i in range(5)]
        wait_until(lambda: all_succeed(runs), timeout=90, interval=0.5, tick=reconcile_once)

        subprocess.run(["redis-cli", "-p", PORT, "CLIENT", "KILL", "TYPE", "normal"],
                       capture_output=True)
        runs = [run_hello(workspace, owner, target, f"after-reset-{i}") for i in range(5)]
        wait_until(lambda: all_succeed(runs), timeout=90, interval=0.5, tick=reconcile_once)
        assert worker.worker_pids() == pids  # the same processes, not a restarted worker
    finally:
        worker.stop()
