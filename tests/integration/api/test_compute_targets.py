"""Compute targets: admins register them (the worker key is shown once); workers show state."""

from datetime import timedelta

from django.urls import reverse
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


def test_a_workspaces_first_target_is_its_default(workspace, other_workspace):
    first = ComputeTarget.objects.create(workspace=workspace, name="first")
    second = ComputeTarget.objects.create(workspace=workspace, name="second")
    elsewhere = ComputeTarget.objects.create(workspace=other_workspace, name="elsewhere")
    assert [t.is_default for t in (first, second, elsewhere)] == [True, False, True]


def test_an_admin_makes_another_target_the_default_which_clears_the_first(
        client_for, owner, outsider, local_target):
    client = client_for(owner)
    gpu = client.post("/api/compute-targets/", {"name": "gpu"}, format="json").json()
    elsewhere = client_for(outsider).post("/api/compute-targets/", {"name": "elsewhere"},
                                          format="json").json()
    assert (gpu["is_default"], elsewhere["is_default"]) == (False, True)

    response = client.patch(f"/api/compute-targets/{gpu['id']}/", {"is_default": True},
                            format="json")
    assert response.status_code == 200 and response.json()["is_default"] is True
    listed = {t["name"]: t["is_default"] for t in client.get("/api/compute-targets/").json()[
        "results"]}
    assert listed == {"gpu": True, "local": False}
    assert ComputeTarget.objects.get(name="elsewhere").is_default  # another workspace's


def test_a_new_target_may_be_registered_as_the_default(client_for, owner, local_target):
    response = client_for(owner).post("/api/compute-targets/",
                                      {"name": "gpu", "is_default": True}, format="json")
    assert response.status_code == 201 and response.json()["is_default"] is True
    assert list(ComputeTarget.objects.filter(is_default=True).values_list("name", flat=True)
                ) == ["gpu"]


def test_the_default_cannot_be_unset_only_replaced(client_for, owner, local_target):
    response = client_for(owner).patch(f"/api/compute-targets/{local_target.pk}/",
                                       {"is_default": False}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "is_default"
    assert ComputeTarget.objects.get(pk=local_target.pk).is_default


def test_editors_cannot_choose_the_default(client_for, workspace, local_target):
    from tests.conftest import _member

    gpu = ComputeTarget.objects.create(workspace=workspace, name="gpu")
    client = client_for(_member(workspace, "editor", "editor"))
    assert client.patch(f"/api/compute-targets/{gpu.pk}/", {"is_default": True},
                        format="json").status_code == 403
    assert not ComputeTarget.objects.get(pk=gpu.pk).is_default


def test_the_compute_page_marks_the_default(client, owner, workspace, local_target):
    ComputeTarget.objects.create(workspace=workspace, name="gpu")
    client.force_login(owner)
    targets = client.get(reverse("compute:status")).json()["targets"]
    assert {t["name"]: t["is_default"] for t in targets} == {"gpu": False, "local": True}


def test_the_demo_runs_new_steps_on_local(db):
    from pipelines_ui.accounts.models import Workspace
    from pipelines_ui.services import seed_demo

    demo = Workspace.objects.create(slug="demo", name="Demo")
    ComputeTarget.objects.create(workspace=demo, name="demo-gpu")  # its default, at first
    seed_demo()
    seed_demo()  # again: keeps what exists
    assert list(ComputeTarget.objects.filter(workspace=demo, is_default=True)
                .values_list("name", flat=True)) == ["local"]
