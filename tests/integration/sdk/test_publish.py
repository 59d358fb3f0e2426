"""Publishing from code: versions, an endpoint triggered with a token, republishing,
schedules, and a component registered from code used as a step."""

from textwrap import dedent

import httpx
import pytest

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.pipelines.models import Schedule
from runner.sdk import (
    ApiError,
    Client,
    ComponentStep,
    Endpoint,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Run,
    register_component,
    trigger_endpoint,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def multiplier(client, target, factor: int) -> Pipeline:
    n = PipelineParameter("n", default=1)
    code = dedent(f"""
        from runner import context
        (context.output_path('out') / 'value.txt').write_text(str(context.param('n') * {factor}))
        """)
    step = PythonScriptStep("make", code=code, params={"n": n}, compute_target=target,
                            outputs=[PipelineData("out")])
    return Pipeline(client, [step], name="multiply")


def value(run: Run, tmp_path) -> str:
    return (run.download("make", "out", tmp_path / str(run.id)) / "value.txt").read_text()


def test_a_version_published_from_code_runs_from_its_endpoint_with_a_token(
        client, target, engine, owner, workspace, tmp_path):
    first = multiplier(client, target, 2)
    assert first.publish("times two") == 1
    endpoint = Endpoint.publish(client, "multiply", first)
    assert endpoint.default_version == 1
    _row, invoke_key = ApiToken.issue(workspace, owner, "partner", ["endpoint:invoke:multiply"])
    with Client(engine.url, invoke_key) as partner:
        run = trigger_endpoint(partner, "multiply", {"n": 5})
        assert value(Run.get(client, run.id).wait(show_output=False, poll_s=0.3),
                     tmp_path) == "10"
        with pytest.raises(ApiError) as refused:
            partner.get("/api/pipelines/")
        assert refused.value.status == 403

    second = multiplier(client, target, 3)
    assert second.publish("times three") == 2
    assert Endpoint.publish(client, "multiply", second).default_version == 2
    reply = httpx.post(endpoint.url, json={"parameters": {"n": 5}},
                       headers={"Authorization": f"Token {invoke_key}"}).raise_for_status()
    run = Run.get(client, reply.json()["id"]).wait(show_output=False, poll_s=0.3)
    assert (run.data["version"], value(run, tmp_path)) == (2, "15")
    assert endpoint.set_default_version(1).default_version == 1


def test_a_schedule_is_created_for_an_endpoint(client, target):
    pipeline = multiplier(client, target, 2)
    pipeline.publish()
    endpoint = Endpoint.publish(client, "nightly", pipeline)
    created = endpoint.schedule("every night", "0 2 * * *", parameters={"n": 4})
    schedule = Schedule.objects.get(pk=created["id"])
    assert (schedule.cron, schedule.parameters, schedule.endpoint.name) == (
        "0 2 * * *", {"n": 4}, "nightly")
    with pytest.raises(ApiError) as bad:
        endpoint.schedule("broken", "not cron")
    assert bad.value.status == 400 and bad.value.errors[0]["field"] == "cron"


def test_a_component_registered_from_code_is_a_step(client, target, tmp_path):
    code = tmp_path / "scale"
    code.mkdir()
    (code / "main.py").write_text(dedent("""
        from runner import context
        v = int((context.input_path('data') / 'value.txt').read_text())
        (context.output_path('scaled') / 'value.txt').write_text(str(v * context.param('by')))
        """))
    key = register_component(
        client, "scale", source_directory=code, inputs=[{"name": "data"}],
        outputs=[{"name": "scaled"}],
        params_schema={"type": "object", "properties": {"by": {"type": "integer"}},
                       "required": ["by"]})
    assert key == "scale@1"
    raw, scaled = PipelineData("raw"), PipelineData("scaled")
    PythonScriptStep("make", code="from runner import context\n"
                     "(context.output_path('raw') / 'value.txt').write_text('6')\n",
                     outputs=[raw], compute_target=target)
    scale = ComponentStep("scale", key, inputs={"data": raw}, outputs={"scaled": scaled},
                          params={"by": 7}, compute_target=target)
    pipeline = Pipeline(client, [scale], name="scaled")
    assert pipeline.validate() == []
    wrong = Pipeline(client, [ComponentStep("s", key, params={"by": "x"},
                                            compute_target=target)], name="wrong")
    assert {e["field"] for e in wrong.validate()} >= {"params.by"}
    run = pipeline.submit().wait(show_output=False, poll_s=0.3)
    folder = run.download("scale", "scaled", tmp_path / "out")
    assert (folder / "value.txt").read_text() == "42"
