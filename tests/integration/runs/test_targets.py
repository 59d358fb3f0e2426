"""Each compute target's worker receives only its own steps."""

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
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


def test_a_worker_announces_itself_with_its_slots_and_hardware(engine, workspace):
    from pipelines_ui.compute.models import Worker
    from pipelines_ui.compute.services import issue_worker_key

    name = unique_target()
    target = ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url, key=issue_worker_key(target), name="announced",
                           concurrency=2)
    try:
        seen = wait_until(lambda: Worker.objects.filter(target=target).first(), timeout=30)
    finally:
        worker.stop()
    assert (seen.hostname, seen.slots, seen.state) == ("announced", 2, "online")
    assert seen.resources["cpus"] >= 1 and seen.resources["memory_bytes"] > 0
    wait_until(lambda: Worker.objects.get(pk=seen.pk).stopped, timeout=10)


def test_a_wrong_worker_key_is_refused(client, local_target):
    body = {"hostname": "h", "target": "local", "slots": 1, "busy": 0, "resources": {}}
    response = client.post("/api/worker/heartbeat/", body, content_type="application/json",
                           headers={"Authorization": "WorkerKey pwk_local_wrong"})
    assert response.status_code == 401
