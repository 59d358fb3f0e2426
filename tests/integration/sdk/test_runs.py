"""Build the diamond in code, run it, follow it, read its metrics, download an output; run it
again unchanged and every step is reused; cancel; rerun from what failed."""

import io
from textwrap import dedent

import pytest

from pipelines_ui.data.models import Artifact
from pipelines_ui.runs.models import Run as RunRow
from runner.sdk import (
    Pipeline,
    PipelineData,
    PipelineInvalid,
    PipelineParameter,
    PythonScriptStep,
    Run,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SCRIPTS = {
    "a.py": """
        from runner import context
        (context.output_path('a_out') / 'value.txt').write_text('7')
        print('a wrote 7')
        """,
    "b.py": """
        from runner import context
        v = int((context.input_path('a_out') / 'value.txt').read_text())
        (context.output_path('b_out') / 'value.txt').write_text(str(v * 2))
        context.log_metric('doubled', v * 2, step=1)
        """,
    "c.py": """
        import sys
        from runner import context
        v = int((context.input_path('a_out') / 'value.txt').read_text())
        offset = int(sys.argv[1].removeprefix('--offset='))
        (context.output_path('c_out') / 'value.txt').write_text(str(v + offset))
        """,
    "d.py": """
        from runner import context
        total = sum(int((context.input_path(p) / 'value.txt').read_text())
                    for p in ('b_out', 'c_out'))
        (context.output_path('total') / 'value.txt').write_text(str(total))
        context.log_metric('total', total)
        print('total', total)
        if context.param('fail'):
            raise SystemExit('asked to fail')
        """,
}


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "steps"
    folder.mkdir()
    for name, code in SCRIPTS.items():
        (folder / name).write_text(dedent(code))
    return folder


def diamond(client, source, target, name="diamond"):
    """a -> (b, c) -> d; c adds `offset` (an argument), d fails when `fail` is true."""
    a_out, b_out, c_out = PipelineData("a_out"), PipelineData("b_out"), PipelineData("c_out")
    offset = PipelineParameter("offset", default=10)
    fail = PipelineParameter("fail", default=False)
    common = {"source_directory": source, "compute_target": target}
    # a, b and c are found from d, through the data it reads.
    PythonScriptStep("a", "a.py", outputs=[a_out], **common)
    PythonScriptStep("b", "b.py", inputs=[a_out], outputs=[b_out], **common)
    PythonScriptStep("c", "c.py", inputs=[a_out], outputs=[c_out],
                     arguments=[f"--offset={offset}"], **common)
    d = PythonScriptStep("d", "d.py", inputs=[b_out, c_out], outputs=[PipelineData("total")],
                         params={"fail": fail}, **common)
    return Pipeline(client, [d], name=name, parameters=[offset])


def test_the_sdk_runs_the_diamond_and_reads_its_results(client, source, target, tmp_path):
    pipeline = diamond(client, source, target)
    assert pipeline.validate() == []
    output = io.StringIO()
    run = pipeline.submit({"offset": 3}).wait(out=output, poll_s=0.3)
    assert run.status == "succeeded", run.steps
    shown = output.getvalue()
    assert "[d] total 24" in shown and "[a] a wrote 7" in shown
    assert f"run {run.id} succeeded: 4/4 steps done" in shown
    metrics = run.metrics()
    assert metrics.values("doubled") == [14.0] and metrics.values("total", node="d") == [24.0]
    assert metrics.columns["key"] == ["doubled", "total"]
    folder = run.download("d", "total", tmp_path / "result")
    assert (folder / "value.txt").read_text() == "24"
    assert run.logs("a")[0] == "a wrote 7"


def test_a_second_submit_of_unchanged_code_reuses_every_step(client, source, target):
    first = diamond(client, source, target).submit().wait(show_output=False, poll_s=0.3)
    uploads = Artifact.objects.filter(produced_by=None).count()
    second = diamond(client, source, target).submit().wait(show_output=False, poll_s=0.3)
    assert first.status == second.status == "succeeded"
    assert {step["state"] for step in second.steps.values()} == {"reused"}
    assert Artifact.objects.filter(produced_by=None).count() == uploads == 1
    (source / "c.py").write_text((source / "c.py").read_text() + "\n# changed\n")
    third = diamond(client, source, target).submit().wait(show_output=False, poll_s=0.3)
    # The one snapshot holds every script: a change to it runs every step again.
    assert {step["state"] for step in third.steps.values()} == {"succeeded"}


def test_a_failed_run_reruns_from_the_failed_step(client, source, target):
    failed = diamond(client, source, target).submit({"fail": True}).wait(show_output=False,
                                                                        poll_s=0.3)
    assert failed.status == "failed" and failed.steps["d"]["state"] == "failed"
    assert "asked to fail" in failed.steps["d"]["error"]
    again = failed.rerun(from_failed=True).wait(show_output=False, poll_s=0.3)
    assert {node: step["state"] for node, step in again.steps.items()} == {
        "a": "reused", "b": "reused", "c": "reused", "d": "failed"}


def test_a_run_can_be_canceled(client, tmp_path, target):
    slow = PythonScriptStep("slow", code="import time\ntime.sleep(60)\n",
                            compute_target=target, allow_reuse=False)
    run = Pipeline(client, [slow], name="slow").submit()
    run.cancel()
    assert run.wait(show_output=False, poll_s=0.3).status == "canceled"
    assert RunRow.objects.get(pk=run.id).status == "canceled"


def test_an_invalid_pipeline_is_refused_with_the_editors_errors(client, target):
    step = PythonScriptStep("only", code="print(1)", compute_target=target, retries=99)
    pipeline = Pipeline(client, [step], name="bad")
    local = pipeline.validate()
    with pytest.raises(PipelineInvalid) as refused:
        pipeline.submit()
    assert refused.value.errors == local
    assert local[0]["node"] == "only" and local[0]["field"] == "retries"
    assert not RunRow.objects.exists()


def test_a_pipeline_drawn_in_the_editor_loads_into_code_and_runs(client, target, workspace):
    spec = {"parameters": {}, "edges": [], "nodes": [
        {"id": "hello", "component": "python-script@1", "compute": target,
         "params": {"code": "print('drawn')"}, "position": {"x": 120, "y": 40}}]}
    created = client.post("/api/pipelines/", {"workspace": workspace.pk, "name": "drawn",
                                              "spec": spec})
    loaded = Pipeline.load(client, "drawn")
    assert loaded.id == created["id"] and loaded.to_spec()["nodes"][0]["position"] == {
        "x": 120, "y": 40}
    run = loaded.submit().wait(show_output=False, poll_s=0.3)
    assert run.status == "succeeded" and run.logs("hello")[0] == "drawn"
    again = Run.get(client, run.id)
    assert again.steps["hello"]["state"] == "succeeded"
