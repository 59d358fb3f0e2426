"""The pipeline editor in Chromium: build, save, reload, run; refused edges; shown errors."""

import json
import re

import pytest

from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.models import Run
from tests.browser.conftest import open_editor, sign_in, spec_in_page, wait_ready
from tests.browser.pipelines.canvas_actions import add_step, connect, edges, node
from tests.support import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


def wait_saved(page) -> None:
    page.wait_for_function("document.body.dataset.saved === 'saved'")


def test_a_new_user_builds_saves_reloads_and_runs_a_three_step_pipeline(
        page, live_server, owner, workspace, components, target, worker):
    sign_in(page, live_server.url, "owner")
    page.click("nav >> text=Pipelines")
    page.fill("[data-testid=new-pipeline] input[name=name]", "churn")
    page.click("[data-testid=new-pipeline] button[type=submit]")
    wait_ready(page)
    pipeline = Pipeline.objects.get(workspace=workspace, name="churn")
    assert page.url.endswith(f"/pipelines/{pipeline.pk}/edit/")
    assert spec_in_page(page)["nodes"] == []

    # Search narrows the palette; the three steps come from it by drag and drop.
    page.fill("[data-testid=palette-search]", "fit-model")
    assert page.locator(".palette-item:visible").count() == 1
    page.fill("[data-testid=palette-search]", "")
    make = add_step(page, "make-table@1", 120, 200)
    fit = add_step(page, "fit-model@1", 420, 200)
    score = add_step(page, "score-model@1", 720, 200)
    assert (make, fit, score) == ("make-table", "fit-model", "score-model")
    connect(page, make, "table", fit, "data")
    connect(page, fit, "model", score, "model")
    assert edges(page) == [{"from": "make-table.table", "to": "fit-model.data"},
                           {"from": "fit-model.model", "to": "score-model.model"}]

    # A parameter, set in the panel generated from the component's schema.
    node(page, fit).locator("text=Fit model").click()
    page.fill("[data-testid=step-panel] [data-param=alpha]", "0.7")
    page.locator("[data-testid=step-panel] [data-param=alpha]").blur()
    page.wait_for_function("document.body.dataset.validation === 'valid'")
    assert page.locator("[data-testid=save-state]").inner_text() == "Unsaved changes"

    page.keyboard.press("Control+s")
    wait_saved(page)
    pipeline.refresh_from_db()
    assert [n["id"] for n in pipeline.spec["nodes"]] == [make, fit, score]
    assert pipeline.spec["nodes"][1]["params"]["alpha"] == 0.7
    assert all(n["compute"] == target.name for n in pipeline.spec["nodes"])

    page.reload()
    wait_ready(page)
    reloaded = spec_in_page(page)
    assert reloaded["nodes"] == pipeline.spec["nodes"]  # positions too
    assert len(reloaded["edges"]) == 2
    node(page, fit).locator("text=Fit model").click()
    assert page.input_value("[data-testid=step-panel] [data-param=alpha]") == "0.7"

    page.click("[data-action=run]")
    page.wait_for_function("document.getElementById('run-dialog').dataset.plan === 'ready'")
    plan = page.locator("[data-testid=run-plan] tr[data-node]")
    assert plan.count() == 3
    assert set(plan.evaluate_all("rows => rows.map(r => r.dataset.action)")) == {"run"}
    page.click("[data-testid=start-run]")
    page.wait_for_url(re.compile(r".*/runs/\d+/$"))
    run = Run.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    assert run.pipeline_id == pipeline.pk
    assert page.locator("[data-testid=run-detail]").is_visible()

    def finished():
        run.refresh_from_db()
        return run.is_finished

    wait_until(finished, timeout=120)
    assert run.status == "succeeded", list(run.steps.values_list("node", "state", "error"))


def test_an_edge_between_ports_of_other_types_is_refused_with_a_reason(
        page, live_server, owner, workspace, components, target):
    pipeline = Pipeline.objects.create(workspace=workspace, name="typed")
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)
    make = add_step(page, "make-table@1", 120, 200)
    score = add_step(page, "score-model@1", 480, 200)

    connect(page, make, "table", score, "model")

    message = page.locator("[data-testid=editor-message]")
    message.wait_for(state="visible")
    assert message.inner_text() == ("Cannot connect make-table.table (table) to "
                                    "score-model.model (model): the port types do not match.")
    assert edges(page) == []


def test_a_cycle_is_marked_on_its_nodes_and_listed(
        page, live_server, owner, workspace, target):
    def script(node_id, x, y):
        return {"id": node_id, "component": "python-script@1", "compute": target.name,
                "params": {"code": "print(1)"}, "position": {"x": x, "y": y},
                "ports": {"inputs": [{"name": "x", "type": "any", "optional": True}],
                          "outputs": [{"name": "out", "type": "any"}]}}

    spec = {"parameters": {}, "nodes": [script("a", 40, 40), script("b", 340, 40),
                                        script("c", 340, 240), script("lone", 40, 240)],
            "edges": [{"from": "a.out", "to": "b.x"}, {"from": "b.out", "to": "c.x"}]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="loop", spec=spec)
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)

    connect(page, "c", "out", "a", "x")  # closes a -> b -> c -> a

    page.wait_for_function("document.body.dataset.validation === 'invalid'")
    marked = page.locator("#canvas .x6-node.has-error").evaluate_all(
        "views => views.map(v => v.dataset.cellId).sort()")
    assert marked == ["a", "b", "c"]
    page.click("[data-tab=problems]")
    problem = page.locator("[data-testid=problems] .problem", has_text="cycle")
    assert "a -> b -> c -> a" in problem.inner_text()
    problem.click()
    assert page.evaluate("window.pipelineEditor.tools.selected().map(c => c.id)") == ["a"]


def test_a_stale_save_is_refused_with_a_clear_message(
        page, browser, live_server, owner, workspace, components, target):
    pipeline = Pipeline.objects.create(workspace=workspace, name="shared")
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)
    other = page.context.new_page()
    open_editor(other, live_server.url, pipeline.pk)

    add_step(other, "make-table@1", 120, 200)
    other.keyboard.press("Control+s")
    wait_saved(other)
    add_step(page, "fit-model@1", 120, 200)
    page.keyboard.press("Control+s")

    page.wait_for_function("document.body.dataset.saved === 'conflict'")
    banner = page.locator("[data-testid=editor-banner]")
    assert "Someone else saved this pipeline" in banner.inner_text()
    pipeline.refresh_from_db()
    assert [n["id"] for n in pipeline.spec["nodes"]] == ["make-table"]


def test_undo_redo_delete_and_layout_work_from_the_keyboard_and_toolbar(
        page, live_server, owner, workspace, components, target):
    pipeline = Pipeline.objects.create(workspace=workspace, name="keys")
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)
    make = add_step(page, "make-table@1", 120, 200)
    fit = add_step(page, "fit-model@1", 400, 320)
    connect(page, make, "table", fit, "data")

    page.click("[data-action=layout]")
    nodes = {n["id"]: n["position"] for n in spec_in_page(page)["nodes"]}
    assert nodes[make]["y"] == nodes[fit]["y"] and nodes[make]["x"] < nodes[fit]["x"]

    node(page, fit).locator("text=Fit model").click()
    page.keyboard.press("Delete")
    assert [n["id"] for n in spec_in_page(page)["nodes"]] == [make]
    assert edges(page) == []
    page.keyboard.press("Control+z")
    assert [n["id"] for n in spec_in_page(page)["nodes"]] == [make, fit]
    assert len(edges(page)) == 1
    page.keyboard.press("Control+Shift+z")
    assert [n["id"] for n in spec_in_page(page)["nodes"]] == [make]
    page.keyboard.press("Control+y")  # nothing left to redo
    page.click("[data-action=undo]")
    assert len(edges(page)) == 1


def test_parameters_and_ports_are_edited_in_the_side_panels_and_leaving_asks_first(
        page, live_server, owner, workspace, target):
    pipeline = Pipeline.objects.create(workspace=workspace, name="panels")
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)

    page.click("[data-tab=parameters]")
    panel = page.locator("[data-testid=parameters-panel]")
    panel.locator("input[name=name]").fill("threshold")
    panel.locator("select[name=type]").select_option("float")
    panel.locator("input[name=default]").fill("0.25")
    panel.locator("button[type=submit]").click()
    assert spec_in_page(page)["parameters"] == {"threshold": {"type": "float", "default": 0.25}}

    page.click('.palette-item[data-component="python-script@1"]')  # a click adds it too
    step = page.locator("[data-testid=step-panel]")
    step.locator(".port-add[data-kind=outputs] input[name=name]").fill("scores")
    step.locator(".port-add[data-kind=outputs] select").select_option("table")
    step.locator(".port-add[data-kind=outputs] button").click()
    node(page, "python-script").locator('[port="out:scores"]').wait_for()
    other = step.locator("[data-param=__other__]")
    other.fill('{"threshold": "${threshold}"}')
    other.blur()
    step.locator(".CodeMirror[data-code-for=code] .CodeMirror-lines").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("if True:\n")  # the editor indents the block after the colon
    page.keyboard.press("Tab")  # indents one level more, stays in the editor
    page.keyboard.type("pass")
    page.keyboard.press("Escape")  # leaves the editor, which commits the script

    (script,) = spec_in_page(page)["nodes"]
    assert script["ports"] == {"inputs": [], "outputs": [{"name": "scores", "type": "table"}]}
    assert script["params"]["threshold"] == "${threshold}"
    assert script["params"]["code"].endswith("if True:\n        pass")
    page.wait_for_function("document.body.dataset.validation === 'valid'")

    with page.expect_event("dialog") as leaving:
        page.close(run_before_unload=True)
    assert leaving.value.type == "beforeunload"
    leaving.value.dismiss()


def test_a_spec_is_exported_and_imported_as_json(
        page, live_server, owner, workspace, components, target, tmp_path):
    spec = {"parameters": {}, "edges": [{"from": "make.table", "to": "fit.data"}], "nodes": [
        {"id": "make", "component": "make-table@1", "compute": target.name},
        {"id": "fit", "component": "fit-model@1", "compute": target.name}]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="ported")
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)

    path = tmp_path / "sdk.json"
    path.write_text(json.dumps(spec))
    page.set_input_files("#import-file", str(path))
    page.wait_for_function("window.pipelineEditor.spec().nodes.length === 2")
    imported = spec_in_page(page)
    assert imported["edges"] == spec["edges"]
    assert imported["nodes"][0]["position"]["x"] < imported["nodes"][1]["position"]["x"]
    page.wait_for_function("document.body.dataset.validation === 'valid'")

    with page.expect_download() as download:
        page.click("[data-action=export]")
    exported = json.loads(download.value.path().read_text())
    assert exported == spec_in_page(page)
    page.click("[data-action=undo]")  # the import is one undoable change
    assert spec_in_page(page)["nodes"] == []


def test_an_edge_is_selected_by_a_click_and_deleted_with_the_key(
        page, live_server, owner, workspace, components, target):
    spec = {"parameters": {}, "edges": [{"from": "make.table", "to": "fit.data"}], "nodes": [
        {"id": "make", "component": "make-table@1", "compute": target.name,
         "position": {"x": 40, "y": 40}},
        {"id": "fit", "component": "fit-model@1", "compute": target.name,
         "position": {"x": 460, "y": 40}}]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="wires", spec=spec)
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)

    middle = page.evaluate("""() => {
        const path = document.querySelector('#canvas .x6-edge path:last-of-type');
        const p = path.getPointAtLength(path.getTotalLength() / 2);
        const m = path.getScreenCTM();
        return [p.x * m.a + p.y * m.c + m.e, p.x * m.b + p.y * m.d + m.f];
    }""")
    page.mouse.click(*middle)
    assert page.evaluate("window.pipelineEditor.tools.selected().map(c => c.isEdge())") == [True]
    page.keyboard.press("Delete")
    assert edges(page) == []
    page.wait_for_function("document.body.dataset.validation === 'invalid'")  # fit.data unfed
