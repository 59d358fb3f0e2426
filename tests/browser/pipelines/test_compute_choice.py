"""The editor and compute targets in Chromium: a new step runs on the workspace's default
target, whichever name sorts first, and the Run dialog warns, before the run starts, of a step
whose target has no worker online."""

import pytest

from pipelines_ui.compute.models import ComputeTarget, Worker
from pipelines_ui.pipelines.models import Pipeline
from tests.browser.conftest import open_editor, save_screenshot, sign_in, spec_in_page
from tests.browser.pipelines.canvas_actions import add_step, node
from tests.integration.runs.specs import edge, script

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]


def test_a_new_step_runs_on_the_workspaces_default_target(page, live_server, owner,
                                                          workspace, components):
    ComputeTarget.objects.create(workspace=workspace, name="b-first")  # the default at first
    ComputeTarget.objects.create(workspace=workspace, name="c-chosen", is_default=True)
    ComputeTarget.objects.create(workspace=workspace, name="a-sorts-first")
    pipeline = Pipeline.objects.create(workspace=workspace, name="fresh")
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)

    added = add_step(page, "make-table@1", 200, 200)
    assert spec_in_page(page)["nodes"][0]["compute"] == "c-chosen"
    node(page, added).locator("text=Make table").click()
    choice = page.locator("[data-testid=step-panel] [data-option=compute]")
    assert choice.input_value() == "c-chosen"
    assert choice.locator("option:checked").inner_text() == "c-chosen (default)"


def test_the_run_dialog_warns_of_a_step_no_worker_can_take(page, live_server, owner, workspace):
    served = ComputeTarget.objects.create(workspace=workspace, name="cpu")
    Worker.objects.create(target=served, hostname="cpu-box")
    ComputeTarget.objects.create(workspace=workspace, name="gpu")
    pipeline = Pipeline.objects.create(workspace=workspace, name="train", spec={
        "parameters": {}, "edges": [edge("prep.out", "train.x")],
        "nodes": [script("prep", "print(1)", target="cpu", outputs=["out"]),
                  script("train", "print(2)", target="gpu", inputs=["x"])]})
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)

    page.click("[data-action=run]")
    page.wait_for_function("document.getElementById('run-dialog').dataset.plan === 'ready'")
    warnings = page.locator("[data-testid=run-warnings] li")
    assert warnings.count() == 1
    assert warnings.first.get_attribute("data-node") == "train"
    assert warnings.first.inner_text() == (
        "no worker is online for compute target 'gpu': step train will wait until one starts "
        "(python -m runner worker --target gpu)")
    assert page.locator("[data-testid=start-run]").is_enabled()  # a warning, not an error
    save_screenshot(page, "editor-run-dialog-warning")

    # Once a worker of gpu is up, the plan asked again has nothing to warn of.
    Worker.objects.create(target=ComputeTarget.objects.get(name="gpu"), hostname="gpu-box")
    page.click("[data-testid=run-dialog] button[value=cancel]")
    page.click("[data-action=run]")
    page.wait_for_selector("[data-testid=run-warnings]", state="hidden")
    page.wait_for_function("document.getElementById('run-dialog').dataset.plan === 'ready'")
    assert page.locator("[data-testid=run-plan] tr[data-node]").count() == 2
