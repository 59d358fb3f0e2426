"""R1, R11: a step whose process (or its pool child) dies is reported truthfully and retried
only per policy, and leaves nothing in the broker to deliver again."""

import json

import pytest
import redis

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, submit_run
from pipelines_ui.runs.models import Run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(180)

KILLS_ITSELF_ON_FIRST_ATTEMPT = """
    import os, signal
    from runner import context
    if context.attempt() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    print('survived attempt', context.attempt())
    """
ALWAYS_KILLS_ITSELF = """
    import os, signal
    os.kill(os.getpid(), signal.SIGKILL)
    """


def _worker_target(engine, workspace, extra_env=None):
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url, extra_env=extra_env)
    yield name
    worker.stop()


@pytest.fixture
def target(engine, workspace):
    yield from _worker_target(engine, workspace)


@pytest.fixture
def unconfined_target(engine, workspace):
    """A confined step may not signal its worker (S11): the step that kills its pool child,
    standing in for the child's own death, runs unconfined."""
    yield from _worker_target(engine, workspace, {"PIPELINES_STEP_ISOLATION": "none"})


def run_to_end(workspace, owner, target, code, retries) -> Run:
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("fragile", code, target=target, allow_reuse=False, retries=retries)]}
    pipeline = Pipeline.objects.create(workspace=workspace, name=unique_target(), spec=spec)
    run = submit_run(pipeline, user=owner)

    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_until(done, timeout=90, tick=reconcile_once)
    return run


def test_a_killed_step_with_a_retry_left_succeeds_on_its_second_attempt(target, workspace,
                                                                        owner):
    run = run_to_end(workspace, owner, target, KILLS_ITSELF_ON_FIRST_ATTEMPT, retries=1)
    step = run.steps.get()
    assert (run.status, step.state, step.attempt) == ("succeeded", "succeeded", 2)
    assert step.attempts[0]["error"] == "killed by signal 9"
    assert step.log_lines.filter(attempt=2, text="survived attempt 2").exists()


def test_a_killed_step_without_retries_fails_the_run(target, workspace, owner):
    run = run_to_end(workspace, owner, target, KILLS_ITSELF_ON_FIRST_ATTEMPT, retries=0)
    step = run.steps.get()
    assert (run.status, step.state, step.attempt, step.error) == (
        "failed", "failed", 1, "killed by signal 9")


def test_a_poison_step_makes_exactly_its_budget_of_attempts(target, workspace, owner,
                                                           settings):
    run = run_to_end(workspace, owner, target, ALWAYS_KILLS_ITSELF, retries=2)
    step = run.steps.get()
    assert (run.status, step.state, step.attempt) == ("failed", "failed", 3)
    assert [a["attempt"] for a in step.attempts] == [1, 2]
    assert all(a["error"] == "killed by signal 9" for a in step.attempts)
    wait_for_an_empty_queue(workspace, target, settings)


KILLS_ITS_POOL_CHILD = """
    import os, signal
    pool_child = os.getppid()  # the step's supervisor; above it the template it was forked
    while b"worker" not in open(f"/proc/{pool_child}/cmdline", "rb").read().split(b"\\0"):
        with open(f"/proc/{pool_child}/stat") as stat:  # from, or the worker process
            pool_child = int(stat.read().rsplit(")", 1)[1].split()[1])
    print('killing the pool child', pool_child, flush=True)
    os.kill(pool_child, signal.SIGKILL)
    """


def test_a_step_that_always_kills_its_pool_child_makes_exactly_its_budget_of_attempts(
        unconfined_target, workspace, owner, settings):
    target = unconfined_target
    settings.STEP_LOST_AFTER_S = 3  # the attempt is found lost from its missing heartbeats
    run = run_to_end(workspace, owner, target, KILLS_ITS_POOL_CHILD, retries=2)
    step = run.steps.get()
    assert (run.status, step.state, step.attempt) == ("failed", "failed", 3)
    assert [a["attempt"] for a in step.attempts] == [1, 2]
    assert all(a["error"].startswith("worker lost") for a in step.attempts)
    assert step.error.startswith("worker lost")
    wait_for_an_empty_queue(workspace, target, settings)


def wait_for_an_empty_queue(workspace, target: str, settings) -> None:
    """R11: nothing of the target's is left in the broker to deliver again (Redis only)."""
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        return
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = ComputeTarget.objects.get(workspace=workspace, name=target).queue

    def drained() -> bool:
        # Celery acks a task whose pool child died after worker_lost_wait (10 s), later than
        # the server gives up on it; once acked, nothing is left to redeliver.
        unacked = [json.loads(raw)[2] for raw in broker.hvals("unacked")]
        return broker.llen(queue) == 0 and queue not in unacked

    wait_until(drained, timeout=30, interval=0.5)
