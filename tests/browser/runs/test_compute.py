"""The compute page in Chromium: a real worker shows online, and a running step appears and
goes without a reload."""

import pytest

from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from tests.browser.conftest import sign_in
from tests.integration.runs.specs import script

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]


def test_the_compute_page_follows_workers_and_running_steps(
        page, asgi_server, live_target, live_worker, workspace, owner):
    sign_in(page, asgi_server.url, "owner")
    page.goto(f"{asgi_server.url}/compute/")
    card = f'[data-target="{live_target.name}"]'
    page.wait_for_selector(f"{card} .worker-state.online", timeout=30_000)
    assert page.inner_text(f'{card} [data-testid="running"]') == "0"
    # The workspace's first target is its default, where new steps run.
    assert page.inner_text(f'{card} [data-testid="default-target"]') == "default"

    spec = {"parameters": {}, "edges": [], "nodes": [
        script("nap", "import time; print('napping'); time.sleep(4)", target=live_target.name)]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="naps", spec=spec)
    run = submit_run(pipeline, user=owner)
    page.wait_for_selector(f'{card} a[href="/runs/{run.pk}/"]', timeout=30_000)
    assert page.inner_text(f'{card} [data-testid="running"]') == "1"
    page.wait_for_function(
        f"document.querySelector('{card} [data-testid=running]').textContent === '0'",
        timeout=30_000)
