"""S11: /healthz and the compute page say how each online worker isolates its steps, and
warn loudly where it does not."""

import pytest

from pipelines_ui.compute.models import ComputeTarget, Worker


@pytest.fixture
def workers(workspace):
    target = ComputeTarget.objects.create(workspace=workspace, name="gpu")
    isolated = {"level": "step-user", "landlock_abi": 7, "user": "pipelines-step",
                "description": "steps are isolated: user pipelines-step + Landlock ABI 7"}
    Worker.objects.create(target=target, hostname="safe", resources={"isolation": isolated})
    Worker.objects.create(target=target, hostname="open", resources={"cpus": 2})
    return target


def test_healthz_reports_each_workers_level_and_warns_of_none(client, workers):
    found = client.get("/healthz").json()["step_isolation"]
    assert found["workers"] == {"none": 1, "step-user": 1}  # counts: the page is public
    assert "safe" not in str(found) and "gpu" not in str(found)
    assert found["levels"] == ["none", "step-user"]
    assert "not isolated" in found["warning"]


def test_the_compute_page_shows_the_levels_and_warns(client, owner, workers):
    client.force_login(owner)
    page = client.get("/compute/").content.decode()
    assert 'data-testid="not-isolated"' in page
    assert "user pipelines-step + Landlock ABI 7" in page
    Worker.objects.filter(hostname="open").delete()
    assert 'data-testid="not-isolated"' not in client.get("/compute/").content.decode()
