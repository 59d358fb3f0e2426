"""R13: outputs become visible and reusable only when complete."""

from pathlib import Path

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.data.models import Artifact
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(180)

DIES_HALFWAY = """
    import os, signal
    from runner import context
    chunk = b'x' * (1 << 20)
    with open(context.output_path('out') / 'big.bin', 'wb') as f:
        for i in range(100):
            f.write(chunk)
            if i == 50:
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
    """


def test_a_step_killed_while_writing_registers_nothing_and_is_not_reused(engine, workspace,
                                                                          owner, settings):
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url)
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("writer", DIES_HALFWAY, target=name, outputs=["out"])]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="partial", spec=spec)
        runs = []
        for _ in range(2):
            run = submit_run(pipeline, user=owner)
            wait_until(lambda run=run: run.steps.filter(state="failed").exists(), timeout=60)
            runs.append(run)
    finally:
        worker.stop()
    assert not Artifact.objects.filter(workspace=workspace).exists()
    temporary = Path(settings.DATASTORE_URL.removeprefix("file://")) / "tmp"
    assert not temporary.exists() or not any(temporary.iterdir())
    second = runs[1].steps.get()
    assert (second.state, second.error) == ("failed", "killed by signal 9")  # ran, not reused
