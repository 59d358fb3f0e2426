"""Publishing from the editor, and earlier versions: read-only view, restore as draft."""

import pytest

from pipelines_ui.pipelines.models import Endpoint, Pipeline
from tests.browser.conftest import open_editor, sign_in, spec_in_page, wait_ready
from tests.browser.pipelines.canvas_actions import node

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def pipeline(workspace, components, target):
    spec = {"parameters": {"rows": {"type": "int", "default": 3}},
            "nodes": [{"id": "make", "component": "make-table@1", "compute": target.name,
                       "params": {"rows": "${rows}"}}],
            "edges": []}
    return Pipeline.objects.create(workspace=workspace, name="Daily table", spec=spec)


def publish(page, message: str) -> str:
    page.click("[data-action=publish]")
    page.fill("[data-testid=publish-message]", message)
    page.click("[data-testid=publish-now]")
    page.wait_for_function(
        "document.getElementById('publish-dialog').dataset.state === 'published'")
    result = page.locator("[data-testid=publish-result]").inner_text()
    page.click("#publish-dialog [data-role=close]")
    return result


def test_publish_then_republish_moves_the_endpoint_to_the_new_version(
        page, live_server, owner, pipeline):
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)
    # No positions in the spec (as the SDK writes it): laid out on open, not a change.
    assert all("position" in n for n in spec_in_page(page)["nodes"])
    assert page.evaluate("document.body.dataset.saved") == "saved"

    first = publish(page, "First cut")
    assert "Published version v1" in first
    assert f"curl -X POST {live_server.url}/api/endpoints/daily-table/runs/" in first
    assert '"parameters":{"rows":3}' in first
    assert Endpoint.objects.get(name="daily-table").default_version.number == 1

    node(page, "make").locator("text=Make table").click()
    page.fill("[data-testid=step-panel] [data-option=label]", "Make the table")
    page.wait_for_function("document.body.dataset.saved === 'dirty'")
    second = publish(page, "A better label")
    assert "Published version v2" in second

    endpoint = Endpoint.objects.get(name="daily-table")
    assert endpoint.default_version.number == 2
    assert endpoint.default_version.spec["nodes"][0]["label"] == "Make the table"
    page.click("[data-tab=versions]")
    versions = page.locator("[data-testid=versions] li")
    assert versions.evaluate_all("items => items.map(i => i.dataset.version)") == ["2", "1"]
    assert page.locator("[data-testid=endpoints]").inner_text() == "daily-table runs v2"

    # After a reload the page still knows the endpoint: a third publish republishes it.
    page.reload()
    wait_ready(page)
    assert "daily-table runs v2" in page.locator("[data-testid=endpoints]").inner_text()


def test_an_earlier_version_opens_read_only_and_can_be_restored_as_the_draft(
        page, live_server, owner, pipeline):
    sign_in(page, live_server.url, "owner")
    open_editor(page, live_server.url, pipeline.pk)
    publish(page, "First cut")
    node(page, "make").locator("text=Make table").click()
    page.fill("[data-testid=step-panel] [data-option=label]", "Renamed")
    page.keyboard.press("Control+s")
    page.wait_for_function("document.body.dataset.saved === 'saved'")

    page.click("[data-tab=versions]")
    page.click("[data-testid=versions] a >> text=v1")
    page.wait_for_function("document.body.dataset.versionReady === '1'")
    assert page.locator("[data-testid=canvas] [data-cell-id=make]").is_visible()
    page.locator("[data-cell-id=make] >> text=Make table").click()
    assert '"component": "make-table@1"' in page.inner_text("[data-testid=node-json]")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=restore]")
    page.wait_for_url(f"{live_server.url}/pipelines/{pipeline.pk}/edit/")
    wait_ready(page)
    assert "label" not in spec_in_page(page)["nodes"][0]
    pipeline.refresh_from_db()
    assert "label" not in pipeline.spec["nodes"][0]
