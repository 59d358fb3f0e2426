"""The run history with 10,000 runs, and the comparison page, in Chromium against the ASGI
server."""

from datetime import UTC, datetime, timedelta

import pytest

from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.models import Run, RunTag
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SPEC = {"parameters": {}, "edges": [], "nodes": [
    {"id": "only", "component": "python-script@1", "compute": "local"}]}
STATUSES = ["succeeded", "failed", "running", "canceled", "queued"]


def seed(workspace, count: int) -> list[Pipeline]:
    """`count` runs, one a minute, over two pipelines; every 7th is tagged `gpu`."""
    pipelines = [Pipeline.objects.create(workspace=workspace, name=n, spec=SPEC)
                 for n in ("churn-model", "forecast")]
    runs = Run.objects.bulk_create(
        [Run(workspace=workspace, pipeline=pipelines[i % 2], spec=SPEC, status=STATUSES[i % 5],
             parameters={"alpha": i}, created_at=T0 + timedelta(minutes=i),
             note=f"sweep {i}") for i in range(count)], batch_size=2000)
    RunTag.objects.bulk_create([RunTag(run=r, name="gpu") for r in runs[::7]],
                               batch_size=2000)
    return pipelines


def shown(page) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all(
        '[data-testid="run-table"] tbody tr[data-run-id]',
        "rows => rows.map(r => r.dataset.runId)")]


def test_the_history_of_10000_runs_filters_and_pages(page, asgi_server, workspace, owner):
    pipelines = seed(workspace, 10_000)
    newest = Run.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
    sign_in(page, asgi_server.url, "owner")
    page.goto(f"{asgi_server.url}/runs/")
    assert shown(page) == list(newest[:50])

    page.select_option('select[name="pipeline"]', str(pipelines[1].pk))
    page.select_option('select[name="status"]', "failed")
    page.fill('input[name="tag"]', "gpu")
    page.click('[data-testid="run-filters"] button[type="submit"]')
    page.wait_for_url("**/runs/?*status=failed*")
    expected = list(Run.objects.filter(pipeline=pipelines[1], status="failed", tags__name="gpu")
                    .order_by("-created_at", "-id").values_list("pk", flat=True))
    assert len(expected) == 143
    assert shown(page) == expected[:50]
    for row in page.query_selector_all('[data-testid="run-table"] tbody tr'):
        text = row.inner_text()
        assert "failed" in text and "forecast" in text and "gpu" in text
    page.click('[data-testid="older"]')
    assert shown(page) == expected[50:100]

    page.goto(f"{asgi_server.url}/runs/")
    page.fill('input[name="q"]', "sweep 9999")
    page.press('input[name="q"]', "Enter")
    page.wait_for_url("**q=sweep*")
    assert shown(page) == list(Run.objects.filter(note__icontains="sweep 9999")
                               .values_list("pk", flat=True))

    page.goto(f"{asgi_server.url}/runs/?since=2025-01-02&until=2025-01-02")
    first_page = shown(page)
    page.click('[data-testid="older"]')
    second_page = shown(page)
    day = Run.objects.filter(created_at__gte=T0 + timedelta(days=1),
                             created_at__lt=T0 + timedelta(days=2)).order_by("-created_at")
    assert first_page + second_page == list(day.values_list("pk", flat=True)[:100])
    page.click('[data-testid="newer"]')
    assert shown(page) == first_page


def test_the_comparison_marks_a_differing_parameter(page, asgi_server, workspace, owner):
    pipeline = Pipeline.objects.create(workspace=workspace, name="churn-model", spec=SPEC)
    one = Run.objects.create(workspace=workspace, pipeline=pipeline, spec=SPEC,
                             status="succeeded", parameters={"alpha": 0.5, "epochs": 10})
    two = Run.objects.create(workspace=workspace, pipeline=pipeline, spec=SPEC,
                             status="succeeded", parameters={"alpha": 0.7, "epochs": 10})
    sign_in(page, asgi_server.url, "owner")
    page.goto(f"{asgi_server.url}/runs/")
    page.check(f'input[name="runs"][value="{one.pk}"]')
    page.check(f'input[name="runs"][value="{two.pk}"]')
    page.click('button:has-text("Compare selected")')
    page.wait_for_function("document.body.dataset.compareReady === '1'")
    alpha = page.locator('[data-testid="compare-params"] tr[data-param="alpha"]')
    epochs = page.locator('[data-testid="compare-params"] tr[data-param="epochs"]')
    assert alpha.get_attribute("class") == "differs"
    assert epochs.get_attribute("class") == ""
    assert sorted(alpha.locator("td").all_inner_texts()) == ["0.5", "0.7"]
    assert epochs.locator("td").all_inner_texts() == ["10", "10"]
    background = alpha.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor")
    assert background != "rgba(0, 0, 0, 0)"  # visibly marked
