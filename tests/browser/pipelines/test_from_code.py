"""A pipeline built with the SDK opens in the editor, its nodes laid out as the data flows."""

import pytest

from pipelines_ui.accounts.models import ApiToken
from runner.sdk import Client, Pipeline, PipelineData, PythonScriptStep
from tests.browser.conftest import open_editor, sign_in, spec_in_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]


def test_a_pipeline_built_in_code_opens_in_the_editor_laid_out(
        page, live_server, owner, workspace, target, tmp_path):
    (tmp_path / "main.py").write_text("print('hi')\n")
    data = {name: PipelineData(name) for name in ("raw", "left", "right")}
    common = {"source_directory": tmp_path, "compute_target": target.name}
    PythonScriptStep("load", outputs=[data["raw"]], **common)
    PythonScriptStep("clean", inputs=[data["raw"]], outputs=[data["left"]], **common)
    PythonScriptStep("enrich", inputs=[data["raw"]], outputs=[data["right"]], **common)
    join = PythonScriptStep("join", inputs=[data["left"], data["right"]], **common)
    _row, key = ApiToken.issue(workspace, owner, "sdk", ["read", "publish"])
    with Client(live_server.url, key) as client:
        pipeline = Pipeline(client, [join], name="from code")
        assert pipeline.save() == []
        assert pipeline.editor_url == f"{live_server.url}/pipelines/{pipeline.id}/edit/"

    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.id)
    shown = {node["id"]: node["position"] for node in spec_in_page(page)["nodes"]}
    assert set(shown) == {"load", "clean", "enrich", "join"}
    assert shown["load"]["x"] < shown["clean"]["x"] == shown["enrich"]["x"] < shown["join"]["x"]
    assert shown["clean"]["y"] != shown["enrich"]["y"]
    assert page.locator(".x6-edge").count() == 4
