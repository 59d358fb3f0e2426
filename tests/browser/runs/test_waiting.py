"""The run page in Chromium while a step's target has no worker: the step says it waits for a
worker on that target and for how long (the time keeps counting), and once a worker comes up
the step runs and the page shows it, without a reload. A retry held until its lost attempt is
gone says that instead."""

from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.models import StepRun
from tests.browser.conftest import save_screenshot, sign_in
from tests.integration.runs.specs import edge, script
from tests.support import WorkerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

WAITING = '[data-testid="step-waiting"]'


def test_a_step_waiting_for_a_worker_says_so_until_one_comes(page, asgi_server, live_target,
                                                             workspace, owner):
    pipeline = Pipeline.objects.create(workspace=workspace, name="nightly", spec={
        "parameters": {}, "edges": [edge("prep.out", "train.x")],
        "nodes": [script("prep", "from runner import context\n"
                                 "(context.output_path('out') / 'x').write_text('1')\n",
                         target=live_target.name, outputs=["out"]),
                  script("train", "print('trained')", target=live_target.name,
                         inputs=["x"])]})
    sign_in(page, asgi_server.url, "owner")
    run = submit_run(pipeline, user=owner)
    page.goto(f"{asgi_server.url}/runs/{run.pk}/")
    page.wait_for_function("document.body.dataset.runReady === '1'")

    prep = '[data-testid="run-graph"] g[data-node="prep"]'
    assert page.get_attribute(prep, "class").split() == ["node", "state-queued", "waiting",
                                                         "selected"]
    assert page.text_content(f"{prep} text.state") == "waiting for a worker"
    first = page.inner_text(WAITING)
    assert first.startswith(f"waiting for a worker on {live_target.name} for ")
    # The time waited keeps counting while the page stays open.
    page.wait_for_function(f"document.querySelector('{WAITING}').textContent !== {first!r}",
                           timeout=15_000)
    save_screenshot(page, "run-page-waiting-for-a-worker")

    worker = WorkerProcess(live_target.name, asgi_server.url,
                           key=issue_worker_key(live_target))
    try:
        page.wait_for_selector('[data-testid="run-status"][data-status="succeeded"]',
                               timeout=60_000)
    finally:
        worker.stop()
    assert page.get_attribute(prep, "data-state") == "succeeded"
    assert "waiting" not in page.get_attribute(prep, "class").split()
    assert page.locator(WAITING).count() == 0


def test_a_retry_held_for_its_lost_attempt_says_so_on_its_node(page, asgi_server, live_target,
                                                              workspace, owner):
    pipeline = Pipeline.objects.create(workspace=workspace, name="retried", spec={
        "parameters": {}, "edges": [],
        "nodes": [script("train", "print('trained')", target=live_target.name)]})
    sign_in(page, asgi_server.url, "owner")
    run = submit_run(pipeline, user=owner)
    stops_at = timezone.now() + timedelta(minutes=10)  # as the server holds a lost one's retry
    StepRun.objects.filter(run=run).update(
        state="queued", attempt=2, dispatched_at=None,
        attempts=[{"attempt": 1, "stops_at": stops_at.isoformat()}])
    page.goto(f"{asgi_server.url}/runs/{run.pk}/")
    page.wait_for_function("document.body.dataset.runReady === '1'")

    label = '[data-testid="run-graph"] g[data-node="train"] text.state'
    first = page.inner_text(WAITING)
    assert first.startswith("waiting for the lost attempt to stop (at most ")
    assert page.text_content(label) == "lost attempt stopping · attempt 2"
    # Read again from the API as the page refreshes a queued step: the same label.
    page.wait_for_function(f"document.querySelector('{WAITING}').textContent !== {first!r}",
                           timeout=15_000)
    assert page.text_content(label) == "lost attempt stopping · attempt 2"
