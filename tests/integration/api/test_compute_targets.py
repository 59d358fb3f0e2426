"""Compute targets: admins register them (the worker key is shown once); workers show state."""

from datetime import timedelta

from django.utils import timezone

from pipelines_ui.compute.models import ComputeTarget, Worker
from pipelines_ui.compute.services import target_for_worker_key


def test_an_admin_registers_a_target_and_gets_its_worker_key_once(client_for, owner,
                                                                  workspace):
    client = client_for(owner)
    response = client.post("/api/compute-targets/", {
        "name": "gpu", "hardware": {"gpus": [{"name": "H100"}]}, "max_concurrency": 1},
        format="json")
    assert response.status_code == 201
    key = response.json()["worker_key"]
    assert target_for_worker_key("gpu", key) == ComputeTarget.objects.get(name="gpu")
    detail = client.get(f"/api/compute-targets/{response.json()['id']}/").json()
    assert "worker_key" not in detail and detail["queue"] == "compute.gpu"


def test_the_target_lists_its_workers_online_or_lost(client_for, viewer, local_target):
    Worker.objects.create(target=local_target, hostname="a", slots=2, busy=1)
    Worker.objects.create(target=local_target, hostname="b",
                          last_seen_at=timezone.now() - timedelta(hours=1))
    body = client_for(viewer).get("/api/compute-targets/").json()["results"][0]
    assert [(w["hostname"], w["state"], w["slots"], w["busy"]) for w in body["workers"]] == [
        ("a", "online", 2, 1), ("b", "lost", 1, 0)]


def test_editors_cannot_manage_targets(client_for, workspace, local_target):
    from tests.conftest import _member

    editor = _member(workspace, "editor", "editor")
    client = client_for(editor)
    assert client.post("/api/compute-targets/", {"name": "x"}, format="json").status_code == 403
    assert client.patch(f"/api/compute-targets/{local_target.pk}/", {"max_concurrency": 9},
                        format="json").status_code == 403


def test_the_name_is_fixed_once_registered(client_for, owner, local_target):
    response = client_for(owner).patch(f"/api/compute-targets/{local_target.pk}/",
                                       {"name": "renamed"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "name"
    response = client_for(owner).patch(f"/api/compute-targets/{local_target.pk}/",
                                       {"max_concurrency": 8}, format="json")
    assert response.json()["max_concurrency"] == 8


def test_target_names_are_unique_across_workspaces(client_for, outsider, local_target):
    response = client_for(outsider).post("/api/compute-targets/", {"name": "local"},
                                         format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "name"
