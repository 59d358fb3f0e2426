"""Each compute target's worker receives only its own steps."""

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.services import submit_run
from tests.integration.runs.specs import edge, script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_two_targets_each_run_only_their_own_steps(engine, workspace, owner):
    cpu, gpu = unique_target(), unique_target()
    for name in (cpu, gpu):
        ComputeTarget.objects.create(workspace=workspace, name=name)
    workers = [WorkerProcess(cpu, engine.url, name="cpu-box"),
               WorkerProcess(gpu, engine.url, name="gpu-box")]
    try:
        code = "from runner import context\n(context.output_path('out') / 'x').write_text('1')\n"
        spec = {"parameters": {}, "nodes": [
            script("prep", code, target=cpu, outputs=["out"]),
            script("train", code, target=gpu, inputs=["x"], outputs=["out"]),
            script("report", "print('ok')", target=cpu, inputs=["x"]),
        ], "edges": [edge("prep.out", "train.x"), edge("train.out", "report.x")]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="split", spec=spec)
        run = submit_run(pipeline, user=owner)
        wait_until(lambda: run.steps.exclude(state="succeeded").count() == 0, timeout=60)
    finally:
        for worker in workers:
            worker.stop()
    placed = {s.node: s.worker for s in run.steps.all()}
    assert placed == {"prep": "cpu-box", "train": "gpu-box", "report": "cpu-box"}
