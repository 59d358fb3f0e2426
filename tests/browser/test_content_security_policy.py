"""The main pages in Chromium under their Content-Security-Policy (S18): not one violation, and
each page still does its work (the editor fills its palette, a run page draws its graph and its
charts live over its socket, the API docs list the operations).

Violations are caught twice: the documents' securitypolicyviolation events, and Chromium's
console messages about the policy. These pages keep their policy (the shared `page` fixture
bypasses it), so the tests wait on selectors, not wait_for_function: Playwright evaluates that
one's predicate with eval(), which the policy refuses.
"""

import pytest

from pipelines_ui.accounts.models import Membership
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Pipeline, PipelineVersion
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.models import MetricPoint
from tests.browser.conftest import sign_in
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# Runs before any script of every document the context opens, whatever the page's policy.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => window.reportViolation(
  `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.documentURI}` +
  ` (${e.sourceFile}:${e.lineNumber}) ${e.sample}`));
"""
POLICY_WORDS = ("Content Security Policy", "Refused to")


@pytest.fixture
def watched(browser):
    """A page whose policy violations, console messages about the policy and uncaught errors
    land in `problems`."""
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    problems: list[str] = []
    context.expose_function("reportViolation", lambda text: problems.append(f"violation: {text}"))
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("console", lambda m: any(w in m.text for w in POLICY_WORDS)
            and problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.problems = problems
    yield page
    context.close()


def settle(page) -> None:
    """Let the page finish loading (its scripts, their requests) before its problems count."""
    page.wait_for_load_state("networkidle")


def visit(page, url: str, ready: str | None = None) -> None:
    response = page.goto(url)
    assert "script-src 'self'" in response.headers.get("content-security-policy", ""), url
    if ready:
        page.wait_for_selector(ready)
    settle(page)


@pytest.fixture
def staff_owner(owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    return owner


def test_the_main_pages_run_without_a_violation(watched, asgi_server, workspace, staff_owner,
                                                components, other_workspace):
    page, url = watched, asgi_server.url
    Membership.objects.create(workspace=other_workspace, user=staff_owner, role="viewer")
    target = ComputeTarget.objects.create(workspace=workspace, name=unique_target())
    pipeline = Pipeline.objects.create(workspace=workspace, name="churn", spec={
        "parameters": {}, "edges": [],
        "nodes": [script("prep", "print('hi')", target=target.name)]})
    PipelineVersion.objects.create(pipeline=pipeline, number=1, spec=pipeline.spec)
    run = submit_run(pipeline, user=staff_owner)

    visit(page, f"{url}/accounts/login/", "input[name=password]")
    sign_in(page, url, staff_owner.username)
    settle(page)
    visit(page, f"{url}/pipelines/", "text=churn")
    visit(page, f"{url}/pipelines/{pipeline.pk}/edit/", "body[data-editor-ready='1']")
    page.wait_for_selector("#palette .palette-item[data-component]")
    visit(page, f"{url}/pipelines/{pipeline.pk}/versions/1/", "[data-testid=restore]")
    visit(page, f"{url}/runs/", f"text=#{run.pk}")
    visit(page, f"{url}/runs/compare/?pipeline={pipeline.pk}&runs={run.pk}",
          "body[data-compare-ready='1']")
    visit(page, f"{url}/compute/", "body[data-compute-ready='1']")
    visit(page, f"{url}/models/")
    visit(page, f"{url}/api/docs/", ".swagger-ui .opblock")
    visit(page, f"{url}/api/redoc/", ".swagger-ui .opblock")  # ReDoc's old link lands here
    visit(page, f"{url}/admin/", "#content-main")
    visit(page, f"{url}/admin/django_celery_beat/periodictask/add/", "#id_crontab")
    page.select_option("#id_crontab", index=0)  # its script, now a file, still answers
    assert "Translation:" in page.inner_text(".field-crontab .help")
    visit(page, f"{url}/", "[data-testid=workspace-switcher]")
    with page.expect_navigation():  # the switcher submits itself (submit-on-change.js)
        page.select_option("[data-testid=workspace-switcher]", str(other_workspace.pk))
    page.wait_for_selector(f"h1:has-text('{other_workspace.name}')")
    settle(page)
    assert page.problems == [], "\n".join(page.problems)


TICKING = """
    import time
    from runner import context
    for i in range(40):
        context.log_metric('loss', 1 / (i + 1), step=i)
        context.flush_metrics()
        time.sleep(0.1)
"""


def test_the_run_page_draws_its_graph_and_live_charts_without_a_violation(
        watched, asgi_server, workspace, owner):
    target = ComputeTarget.objects.create(workspace=workspace, name=unique_target(),
                                          max_concurrency=1)
    pipeline = Pipeline.objects.create(workspace=workspace, name="live", spec={
        "parameters": {}, "edges": [], "nodes": [script("train", TICKING, target=target.name)]})
    page = watched
    sign_in(page, asgi_server.url, owner.username)
    worker = WorkerProcess(target.name, asgi_server.url, key=issue_worker_key(target))
    try:
        run = submit_run(pipeline, user=owner)
        response = page.goto(f"{asgi_server.url}/runs/{run.pk}/")
        assert "connect-src 'self'" in response.headers.get("content-security-policy", "")
        page.wait_for_selector("body[data-run-ready='1']")
        page.wait_for_selector("body[data-live='open']")  # the WebSocket
        page.wait_for_selector('[data-testid="run-graph"] g[data-node="train"]')
        # Points arrive over the socket while the page stays open: plotly draws them all.
        page.wait_for_selector('[data-testid="charts"] .chart[data-key="loss"] .main-svg',
                               timeout=60_000)
        wait_until(lambda: page.evaluate("window.runPage.charts.drawnCount('loss')") == 40,
                   timeout=30)
        page.wait_for_selector('[data-testid="run-status"][data-status="succeeded"]',
                               timeout=60_000)
        settle(page)
    finally:
        worker.stop()
    assert MetricPoint.objects.filter(run=run).count() == 40
    assert page.problems == [], "\n".join(page.problems)


def test_the_watch_sees_a_violation(watched, asgi_server, db):
    """The two tests above would pass on a policy they cannot see: this one sees one."""
    page = watched
    page.goto(f"{asgi_server.url}/accounts/login/")
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.ran = 1'; document.head.append(s); }""")
    settle(page)
    assert page.evaluate("window.ran") is None
    assert any("script-src" in problem for problem in page.problems), page.problems

