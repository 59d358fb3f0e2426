"""R3, R12: a stale attempt stops its process; cancel and timeout end the whole process group
and always reach a final state."""

import os

import psutil
import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import cancel_run, reconcile_once, submit_run
from pipelines_ui.runs.engine.reconcile import mark_attempt_lost
from pipelines_ui.runs.models import LogLine, Run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(120)

WRITES_PID_THEN_SLEEPS = """
    import os, time
    print('pid', os.getpid(), flush=True)
    time.sleep(1000)
    """


@pytest.fixture
def worker_target(engine, workspace):
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url, name="fenced")
    yield name, worker
    worker.stop()


def start(workspace, owner, target, **options) -> tuple[Run, int]:
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("sleepy", WRITES_PID_THEN_SLEEPS, target=target, allow_reuse=False, **options)]}
    pipeline = Pipeline.objects.create(workspace=workspace, name=unique_target(), spec=spec)
    run = submit_run(pipeline, user=owner)
    step = run.steps.get()
    line = wait_until(lambda: LogLine.objects.filter(step_run=step,
                                                     text__startswith="pid").first())
    return run, int(line.text.split()[1])


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_an_attempt_the_server_ended_stops_its_process_within_a_heartbeat(
        worker_target, workspace, owner, settings):
    target, _ = worker_target
    run, pid = start(workspace, owner, target)
    step = run.steps.get()
    assert mark_attempt_lost(step.pk, step.attempt_id, "marked lost by hand")
    wait_until(lambda: gone(pid), timeout=settings.STEP_HEARTBEAT_S * 4 + 2)
    step.refresh_from_db()
    assert (step.state, step.error) == ("failed", "marked lost by hand")
    run.refresh_from_db()
    assert run.status == "failed"


def test_cancel_of_a_run_whose_worker_is_dead_ends_canceled(worker_target, workspace, owner,
                                                            settings):
    target, worker = worker_target
    settings.STEP_CANCEL_TIMEOUT_S = 2
    settings.STEP_LOST_AFTER_S = 600  # only the cancel timeout may end it here
    run, _ = start(workspace, owner, target)
    worker.kill()
    cancel_run(run.pk)

    def canceled():
        run.refresh_from_db()
        return run.status == "canceled"

    wait_until(canceled, timeout=20, interval=0.5, tick=reconcile_once)
    assert run.steps.get().state == "canceled"


SPAWNS_A_GRANDCHILD = """
    import os, subprocess, time
    child = subprocess.Popen(['sleep', '1000'])
    print('group', os.getpgid(0), 'grandchild', child.pid, flush=True)
    time.sleep(1000)
    """


def group_members(pgid: int) -> list[int]:
    members = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def start_group(workspace, owner, target, **options) -> tuple[Run, int]:
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("tree", SPAWNS_A_GRANDCHILD, target=target, allow_reuse=False, **options)]}
    pipeline = Pipeline.objects.create(workspace=workspace, name=unique_target(), spec=spec)
    run = submit_run(pipeline, user=owner)
    line = wait_until(lambda: LogLine.objects.filter(step_run=run.steps.get(),
                                                     text__startswith="group").first())
    pgid = int(line.text.split()[1])
    assert len(group_members(pgid)) == 3  # the step's supervisor, the step, its grandchild
    return run, pgid


def ended(run: Run) -> bool:
    run.refresh_from_db()
    return run.is_finished


def test_cancel_ends_every_process_of_the_steps_group_within_10_s(worker_target, workspace,
                                                                  owner):
    target, _ = worker_target
    run, pgid = start_group(workspace, owner, target)
    cancel_run(run.pk)
    wait_until(lambda: ended(run), timeout=10)
    assert (run.status, run.steps.get().state) == ("canceled", "canceled")
    assert group_members(pgid) == []


def test_a_timeout_ends_every_process_of_the_steps_group(worker_target, workspace, owner):
    target, _ = worker_target
    run, pgid = start_group(workspace, owner, target, timeout_s=2)
    wait_until(lambda: ended(run), timeout=20)
    step = run.steps.get()
    assert (run.status, step.state, step.error) == ("failed", "failed", "timed out after 2 s")
    assert group_members(pgid) == []
