"""The caller's workspaces, each with the caller's own role in it."""

from pipelines_ui.accounts.models import Membership, Workspace


def test_each_workspace_shows_the_callers_role(client_for, viewer, workspace, other_workspace,
                                               owner, django_assert_max_num_queries):
    Membership.objects.create(workspace=other_workspace, user=viewer, role="editor")
    Workspace.objects.create(name="Not mine", slug="not-mine")
    client = client_for(viewer)
    with django_assert_max_num_queries(5):
        rows = client.get("/api/workspaces/").json()["results"]
    assert [(w["name"], w["role"]) for w in rows] == [("Team A", "viewer"),
                                                      ("Team B", "editor")]


def test_a_workspace_of_others_is_404(client_for, owner, other_workspace):
    assert client_for(owner).get(f"/api/workspaces/{other_workspace.pk}/").status_code == 404
