"""R16: a step never outlives its worker's contact, so two attempts of it never run at once.

Two compute workers serve one target. The step is silent: every 0.5 s it appends the time and
its pid to a file, and it leaves a grandchild `sleep 300` behind it. While attempt 1 runs, its
worker is killed with its whole process group, killed alone (its main process: the pool child
follows it), or stopped with its whole process group for longer than the lost-contact timeout
and then resumed. The server retries the step on the other worker; the file then shows when
each attempt's process was alive. No two pids' intervals may overlap, attempt 1 must have
stopped writing within the bound after the fault, and no grandchild may be left.
"""

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from django.utils import timezone

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, submit_run
from pipelines_ui.runs.engine.dispatch import lost_contact_s
from pipelines_ui.runs.waiting import waiting_reason
from runner import step_launch
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(240)]

T = 3  # STEP_LOST_AFTER_S for these tests
AT_ONCE_S = 1.0  # a killed worker's step writes at most once more (every 0.5 s)

SILENT_STEP = """
    import os, subprocess, time
    from runner import context
    child = subprocess.Popen(["sleep", "300"])
    with open({children!r}, "a") as children:
        children.write(f"{{child.pid}}\\n")
    end = time.time() + (120 if context.attempt() == 1 else 2)
    while time.time() < end:
        with open({writes!r}, "a") as writes:
            writes.write(f"{{time.time()}} {{os.getpid()}}\\n")
        time.sleep(0.5)
    """


def kill_group(worker: WorkerProcess) -> None:
    os.killpg(worker.process.pid, signal.SIGKILL)


def kill_main_process(worker: WorkerProcess) -> None:
    os.kill(worker.process.pid, signal.SIGKILL)


def stop_group(worker: WorkerProcess) -> None:
    os.killpg(worker.process.pid, signal.SIGSTOP)
    resume_after = lost_contact_s() + step_launch.STOPPED_WITHIN_S + 2
    threading.Timer(resume_after, os.killpg, (worker.process.pid, signal.SIGCONT)).start()


CASES = {  # a forked step under each fault, and a spawned one (PIPELINES_STEP_LAUNCH) under two
    "kill the group": (kill_group, "fork"), "kill the main process": (kill_main_process, "fork"),
    "stop the group": (stop_group, "fork"),
    "kill the group, spawned": (kill_group, "spawn"),
    "stop the group, spawned": (stop_group, "spawn"),
}


def intervals(writes: Path) -> dict[int, tuple[float, float]]:
    """pid -> (first write, last write)."""
    seen: dict[int, tuple[float, float]] = {}
    for line in writes.read_text().splitlines():
        when, pid = float(line.split()[0]), int(line.split()[1])
        first, _ = seen.get(pid, (when, when))
        seen[pid] = (first, when)
    return seen


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize(("fault", "launch_mode"), CASES.values(), ids=CASES.keys())
def test_a_lost_attempt_stops_before_its_retry_starts(engine, workspace, owner, settings,
                                                      tmp_path, fault, launch_mode):
    settings.STEP_LOST_AFTER_S = T
    writes, children = tmp_path / "writes", tmp_path / "children"
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    workers = {f"orphan{i}": WorkerProcess(name, engine.url, name=f"orphan{i}",
                                           extra_env={"PIPELINES_STEP_LAUNCH": launch_mode,
                                                      # its steps write the test's files (S11)
                                                      "PIPELINES_STEP_ISOLATION": "none"})
               for i in (1, 2)}
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("silent", SILENT_STEP.format(writes=str(writes), children=str(children)),
                   target=name, allow_reuse=False, retries=1)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="silent", spec=spec)
        run = submit_run(pipeline, user=owner)
        step = run.steps.get()
        wait_until(lambda: writes.exists() and len(writes.read_text().splitlines()) >= 3,
                   timeout=60)
        step.refresh_from_db()
        victim = workers[step.worker]
        faulted_at = time.time()
        fault(victim)
        reasons = set()

        def tick():
            reconcile_once()
            step.refresh_from_db()
            reasons.add(waiting_reason(step, timezone.now()))

        def done():
            run.refresh_from_db()
            return run.is_finished

        wait_until(done, timeout=90, interval=0.2, tick=tick)
    finally:
        for worker in workers.values():
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGCONT)
            worker.stop()
    step.refresh_from_db()
    assert (run.status, step.attempt) == ("succeeded", 2), step.attempts
    alive = sorted(intervals(writes).values())
    assert len(alive) == 2
    (first_start, first_end), (second_start, second_end) = alive
    assert first_end < second_start, alive
    bound = AT_ONCE_S if fault is not stop_group else lost_contact_s() + 5
    assert first_end - faulted_at < bound, (first_end - faulted_at, bound)
    assert any(r and r.startswith("waiting for the lost attempt to stop") for r in reasons)
    grandchildren = [int(pid) for pid in children.read_text().split()]
    assert len(grandchildren) == 2
    assert wait_until(lambda: all(gone(pid) for pid in grandchildren), timeout=5)
    print(f"\n{fault.__name__}: attempt 1 last wrote {first_end - faulted_at:.2f} s after the "
          f"fault; attempt 2 first wrote {second_start - faulted_at:.2f} s after it")
