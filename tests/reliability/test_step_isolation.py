"""S6: a step sees only what it was given, not the worker's credentials."""

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(120)

PASSWORD = "pa55word-for-the-isolation-test"
WORKER_KEY = "pwk_isolation_worker_key_that_must_not_leak"
PEEK = """
    import os

    def cmdline(pid):
        return open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')

    def of_the_worker(pid):  # `python -m runner worker`, a step template or a supervisor
        argv = cmdline(pid)
        return argv[1:3] == [b'-m', b'runner'] or any(a.endswith(b'step_launch.py')
                                                      for a in argv[1:4])

    print('ENV', sorted(os.environ.items()))
    ancestors, pid = [], os.getppid()
    while of_the_worker(pid):
        ancestors.append(pid)
        with open(f'/proc/{pid}/stat') as stat:
            pid = int(stat.read().rsplit(')', 1)[1].split()[1])
    for path in [*(f'/proc/{pid}/environ' for pid in ancestors), '/proc/self/environ']:
        try:
            print('PROC', path, open(path, 'rb').read().decode(errors='replace'))
        except OSError as exc:
            print('PROC', path, 'unreadable:', exc)
    """


# The processes between the step and the worker, the step included: its supervisor, the
# template (when forked), the pool child, the worker, and itself.
ANCESTRY = {"fork": 5, "spawn": 4}


@pytest.mark.parametrize("launch_mode", ANCESTRY)
def test_a_step_cannot_see_the_workers_credentials(engine, workspace, owner, launch_mode):
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    # A worker has no use for REDIS_URL; it stands for any credential in its environment.
    worker = WorkerProcess(name, engine.url, key=WORKER_KEY,
                           extra_env={"REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:6379/0",
                                      "PIPELINES_STEP_LAUNCH": launch_mode})
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("peek", PEEK, target=name, allow_reuse=False)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="peek", spec=spec)
        run = submit_run(pipeline, user=owner)
        wait_until(lambda: run.steps.filter(state="succeeded").exists(), timeout=60)
    finally:
        worker.stop()
    output = "\n".join(run.steps.get().log_lines.values_list("text", flat=True))
    assert output.count("PROC /proc/") == ANCESTRY[launch_mode]
    assert WORKER_KEY not in output
    assert PASSWORD not in output
    assert "CELERY_BROKER_URL" not in output
