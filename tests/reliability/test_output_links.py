"""S15: a step's outputs never publish what a link out of the output folder points to."""

from pathlib import Path

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.data.models import Artifact
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(180)

LINKS_PASSWD = """
    import os
    from runner import context
    (context.output_path('model') / 'weights.txt').write_text('trained')
    os.symlink('/etc/passwd', context.output_path('model') / 'passwd')
    """


def test_a_step_linking_a_worker_file_into_its_output_fails_and_publishes_nothing(
        engine, workspace, owner, settings):
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url)
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("train", LINKS_PASSWD, target=name, outputs=["model"])]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="links", spec=spec)
        run = submit_run(pipeline, user=owner)
        wait_until(lambda: run.steps.filter(state__in=("succeeded", "failed")).exists(),
                   timeout=60)
    finally:
        worker.stop()
    step = run.steps.get()
    assert (step.state, step.error) == ("failed", (
        "output 'model': model/passwd is a link to /etc/passwd, outside the output folder; "
        "write the file itself"))
    assert not Artifact.objects.filter(workspace=workspace).exists()
    passwd = Path("/etc/passwd").read_bytes()
    store = Path(settings.DATASTORE_URL.removeprefix("file://"))
    assert not [path for path in store.rglob("*") if path.is_symlink()]
    assert not [path for path in store.rglob("*") if path.is_file()
                and path.read_bytes() == passwd]
