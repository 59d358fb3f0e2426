"""The run engine end to end: real worker processes, the live server, the configured DB."""

from pathlib import Path

import psutil
import pytest

from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import cancel_run, reconcile_once, submit_run
from pipelines_ui.runs.models import LogLine, MetricPoint, Run
from runner.datastore import Datastore
from tests.integration.runs.specs import diamond, edge, script
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def finished(run: Run, timeout: float = 90, reconcile: bool = False) -> Run:
    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_until(done, timeout=timeout, tick=reconcile_once if reconcile else None)
    return run


def steps(run: Run) -> dict:
    return {s.node: s for s in run.steps.all()}


def output_text(settings, step, port="out", name="value.txt") -> str:
    ref_uri = Datastore(settings.DATASTORE_URL).artifact_uri(step.outputs[port])
    return (Path(ref_uri.removeprefix("file://")) / name).read_text()


@pytest.fixture
def pipeline(workspace, target):
    return Pipeline.objects.create(workspace=workspace, name="diamond",
                                   spec=diamond(target.name))


def test_a_diamond_passes_data_from_one_step_to_two_and_back(pipeline, owner, settings):
    run = finished(submit_run(pipeline, user=owner))
    by_node = steps(run)
    assert run.status == "succeeded", {n: (s.state, s.error) for n, s in by_node.items()}
    assert {s.state for s in by_node.values()} == {"succeeded"}
    assert output_text(settings, by_node["d"]) == str(7 * 2 + 7 + 10)
    assert by_node["d"].inputs == {"left": by_node["b"].outputs["out"],
                                   "right": by_node["c"].outputs["out"]}
    assert LogLine.objects.filter(step_run=by_node["d"], text="total 31").exists()
    point = MetricPoint.objects.get(run=run, key="doubled")
    assert (point.step, point.value, point.step_run.node) == (1, 14.0, "b")


def test_independent_steps_run_at_the_same_time(workspace, target, owner):
    sleeper = """
        import time
        from runner import context
        (context.output_path('out') / 'span.txt').write_text(f'{time.time()} ')
        time.sleep(2)
        with open(context.output_path('out') / 'span.txt', 'a') as f:
            f.write(str(time.time()))
        """
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("left", sleeper, target=target.name, outputs=["out"], allow_reuse=False),
        script("right", sleeper, target=target.name, outputs=["out"], allow_reuse=False),
    ]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="parallel", spec=spec)
    run = finished(submit_run(pipeline, user=owner))
    assert run.status == "succeeded"
    left, right = steps(run)["left"], steps(run)["right"]
    assert left.started_at < right.finished_at and right.started_at < left.finished_at


def test_a_second_run_reuses_every_step(pipeline, owner):
    first = finished(submit_run(pipeline, user=owner))
    second = finished(submit_run(pipeline, user=owner))
    assert first.status == second.status == "succeeded"
    reused = steps(second)
    assert {s.state for s in reused.values()} == {"reused"}
    for node, step in reused.items():
        original = steps(first)[node]
        assert step.reused_from_id == original.pk
        assert step.outputs == original.outputs
        assert f"run {first.pk}" in step.reason


def test_a_changed_parameter_reruns_only_its_node_and_what_is_downstream(pipeline, owner):
    finished(submit_run(pipeline, user=owner))
    changed = finished(submit_run(pipeline, user=owner, parameters={"offset": 11}))
    states = {node: s.state for node, s in steps(changed).items()}
    assert states == {"a": "reused", "b": "reused", "c": "succeeded", "d": "succeeded"}
    assert "parameter offset changed from 10 to 11" in steps(changed)["c"].reason
    assert "input right changed" in steps(changed)["d"].reason


def test_a_failing_step_records_its_traceback_and_skips_downstream(workspace, target, owner):
    spec = diamond(target.name)
    spec["nodes"][1]["params"]["code"] = "raise ValueError('bad batch 42')\n"
    pipeline = Pipeline.objects.create(workspace=workspace, name="failing", spec=spec)
    run = finished(submit_run(pipeline, user=owner))
    by_node = steps(run)
    assert run.status == "failed"
    assert by_node["b"].state == "failed"
    assert "ValueError: bad batch 42" in by_node["b"].error
    assert "Traceback (most recent call last)" in by_node["b"].traceback
    assert by_node["b"].exit_code == 1
    assert by_node["c"].state == "succeeded"  # an independent branch still runs
    assert by_node["d"].state == "skipped"
    assert "parent b failed" in by_node["d"].error


GRANDCHILD = """
    import subprocess, sys, time
    from runner import context
    child = subprocess.Popen(['sleep', '1000'])
    print('grandchild', child.pid, flush=True)
    time.sleep(1000)
    """


def grandchild_pid(step) -> int:
    line = wait_until(lambda: LogLine.objects.filter(step_run=step,
                                                     text__startswith="grandchild").first())
    return int(line.text.split()[1])


def test_a_timeout_ends_the_whole_process_tree(workspace, target, owner):
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("slow", GRANDCHILD, target=target.name, timeout_s=3, allow_reuse=False)]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="timeout", spec=spec)
    run = submit_run(pipeline, user=owner)
    pid = grandchild_pid(run.steps.get())
    run = finished(run)
    step = run.steps.get()
    assert (run.status, step.state) == ("failed", "failed")
    assert "timed out" in step.error
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_cancel_ends_the_whole_process_tree(workspace, target, owner):
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("slow", GRANDCHILD, target=target.name, allow_reuse=False),
        script("after", "print('never')", target=target.name, inputs=["x"]),
    ]}
    spec["nodes"][0]["ports"]["outputs"] = [{"name": "out", "type": "any"}]
    spec["edges"] = [edge("slow.out", "after.x")]
    pipeline = Pipeline.objects.create(workspace=workspace, name="cancel", spec=spec)
    run = submit_run(pipeline, user=owner)
    pid = grandchild_pid(run.steps.get(node="slow"))
    cancel_run(run.pk)
    run = finished(run, timeout=30)
    assert run.status == "canceled"
    assert {s.node: s.state for s in run.steps.all()} == {"slow": "canceled", "after": "canceled"}
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_rerun_from_the_failed_step_reuses_what_succeeded(workspace, target, owner):
    from pipelines_ui.runs.engine import rerun

    spec = diamond(target.name)
    spec["nodes"][1]["params"]["code"] = (
        "import os\nfrom runner import context\n"
        "if not os.path.exists('/tmp/pipelines-test-fixed-' + context.run_id()):\n"
        "    raise SystemExit('not fixed yet')\n"
    )
    pipeline = Pipeline.objects.create(workspace=workspace, name="flaky", spec=spec)
    first = finished(submit_run(pipeline, user=owner))
    assert first.status == "failed"
    again = rerun(first, from_failed=True, user=owner)
    states = {n: s.state for n, s in steps(again).items()}
    assert states["a"] == states["c"] == "reused"
    assert steps(again)["a"].reused_from_id == steps(first)["a"].pk
    again = finished(again)
    assert steps(again)["b"].state == "failed"  # still broken: it ran again, not reused
    assert again.rerun_of_id == first.pk and again.trigger == "rerun"


def test_a_rerun_of_everything_runs_every_step_again(pipeline, owner):
    from pipelines_ui.runs.engine import rerun

    first = finished(submit_run(pipeline, user=owner))
    again = finished(rerun(first, from_failed=False, user=owner))
    assert again.status == "succeeded"
    assert {s.state for s in steps(again).values()} == {"succeeded"}
    assert steps(again)["a"].reason == "reuse is off for this run"


def test_the_plan_says_what_would_be_reused_and_what_would_run(pipeline, owner):
    from pipelines_ui.runs.engine import plan_run

    fresh = {p["node"]: p for p in plan_run(pipeline)}
    assert {p["action"] for p in fresh.values()} == {"run"}
    assert fresh["a"]["reason"] == "first run of this node"
    first = finished(submit_run(pipeline, user=owner))
    plan = {p["node"]: p for p in plan_run(pipeline, parameters={"offset": 3})}
    assert {n: p["action"] for n, p in plan.items()} == {"a": "reuse", "b": "reuse",
                                                         "c": "run", "d": "run"}
    assert plan["a"]["reused_from"] == first.pk
    assert "parameter offset changed from 10 to 3" in plan["c"]["reason"]
    assert "runs after c" in plan["d"]["reason"]
