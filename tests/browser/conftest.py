"""Browser tests: Playwright's sync API driving Debian's Chromium against the live server.

Tests wait on the pages' readiness flags (document.body.dataset), never on sleeps, and print
the page's console errors when they fail.
"""

import os
import shutil
from textwrap import dedent

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Component
from tests.support import WorkerProcess, unique_target

# Playwright's sync API runs an event loop in this thread; the tests' own database access is
# still synchronous and safe. (Tests that start processes which must not inherit it, such as
# the deploy check, remove it from their environment.)
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "a-long-test-password"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class Chromium:
    """One Chromium per module, started again if it died: a browser that crashes fails the
    test it crashed in, not every test after it in the module."""

    def __init__(self, playwright) -> None:
        self.playwright = playwright
        self.browser = None

    def get(self):
        if self.browser is None or not self.browser.is_connected():
            self.browser = self.playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        return self.browser


@pytest.fixture(scope="module")
def chromium():
    """Per module: while Playwright runs, its event loop occupies this thread, which later
    tests that call async_to_sync (socket tests) must have back."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = Chromium(playwright)
        yield launched
        if launched.browser is not None and launched.browser.is_connected():
            launched.browser.close()


@pytest.fixture
def browser(chromium):
    return chromium.get()


@pytest.fixture
def page(browser, request):
    """A fresh browser context's page; its console errors print if the test fails.

    It bypasses the pages' Content-Security-Policy: Playwright's wait_for_function evaluates
    its predicate with eval() in the page, which the policy refuses. The pages under their
    policy: test_content_security_policy.py."""
    context = browser.new_context(viewport={"width": 1400, "height": 860}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning")
            and problems.append(f"console {m.type}: {m.text} ({m.location.get('url')})"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    yield page
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        print(f"--- browser console of {request.node.name} (at {page.url}) ---")
        print("\n".join(problems) or "(nothing logged)")
    context.close()


def sign_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def open_editor(page, base_url: str, pipeline_id: int) -> None:
    page.goto(f"{base_url}/pipelines/{pipeline_id}/edit/")
    wait_ready(page)


def wait_ready(page) -> None:
    page.wait_for_function("document.body.dataset.editorReady === '1'")


def spec_in_page(page) -> dict:
    return page.evaluate("window.pipelineEditor.spec()")


@pytest.fixture
def target(settings, live_server, workspace):
    """A compute target of the workspace, with nothing serving it."""
    settings.PIPELINES_SERVER_URL = live_server.url
    return ComputeTarget.objects.create(workspace=workspace, name=unique_target(),
                                        max_concurrency=2)


@pytest.fixture
def worker(target, live_server, settings):
    """A real compute worker for the target, reporting to the live server."""
    settings.STEP_HEARTBEAT_S = 0.5
    process = WorkerProcess(target.name, live_server.url, concurrency=2,
                            key=issue_worker_key(target))
    yield process
    process.stop()


def _component(workspace, name, title, category, inputs, outputs, params_schema, code):
    return Component.objects.create(
        workspace=workspace, name=name, version=1, title=title, category=category,
        description=f"{title} (a test component).", inputs=inputs, outputs=outputs,
        params_schema=params_schema, files={"main.py": dedent(code)},
    )


@pytest.fixture
def components(workspace):
    """Three registered components with typed ports: table -> model -> json."""
    return [
        _component(
            workspace, "make-table", "Make table", "Data", [],
            [{"name": "table", "type": "table"}],
            {"type": "object", "properties": {"rows": {"type": "integer", "default": 5}}},
            """
            from runner import context
            rows = context.param("rows", 5)
            lines = ["x,y"] + [f"{i},{2 * i}" for i in range(rows)]
            (context.output_path("table") / "data.csv").write_text("\\n".join(lines))
            """),
        _component(
            workspace, "fit-model", "Fit model", "Training",
            [{"name": "data", "type": "table"}], [{"name": "model", "type": "model"}],
            {"type": "object", "properties": {
                "alpha": {"type": "number", "default": 0.5, "title": "Alpha"},
                "solver": {"enum": ["lsqr", "svd"]}}},
            """
            import json
            from runner import context
            rows = (context.input_path("data") / "data.csv").read_text().splitlines()[1:]
            model = {"alpha": context.param("alpha", 0.5), "rows": len(rows)}
            (context.output_path("model") / "model.json").write_text(json.dumps(model))
            """),
        _component(
            workspace, "score-model", "Score model", "Evaluation",
            [{"name": "model", "type": "model"}], [{"name": "report", "type": "json"}],
            {"type": "object", "properties": {}},
            """
            from runner import context
            text = (context.input_path("model") / "model.json").read_text()
            (context.output_path("report") / "report.json").write_text(text)
            print("scored", text)
            """),
    ]


def save_screenshot(page, name: str) -> None:
    """With UI_SCREENSHOTS=<folder> set, keep what the page shows now at 1440x900 there."""
    folder = os.environ.get("UI_SCREENSHOTS")
    if folder:
        page.set_viewport_size({"width": 1440, "height": 900})
        page.screenshot(path=os.path.join(folder, f"{name}.png"))
