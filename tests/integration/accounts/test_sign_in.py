from django.urls import reverse


def test_a_member_signs_in_and_sees_the_workspace(client, owner, workspace):
    page = client.get(reverse("accounts:login"))
    assert page.status_code == 200
    response = client.post(reverse("accounts:login"),
                           {"username": "owner", "password": "a-long-test-password"}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"
    assert workspace.name in response.content.decode()
    assert 'data-testid="workspace-switcher"' in response.content.decode()


def test_a_wrong_password_is_refused_with_a_message(client, owner):
    response = client.post(reverse("accounts:login"),
                           {"username": "owner", "password": "wrong"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_pages_need_a_signed_in_user(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_sign_out_ends_the_session(client, owner):
    client.force_login(owner)
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_the_switcher_changes_the_current_workspace(client, owner, other_workspace):
    from pipelines_ui.accounts.models import Membership

    Membership.objects.create(workspace=other_workspace, user=owner, role="viewer")
    client.force_login(owner)
    response = client.post(reverse("accounts:switch"),
                           {"workspace": other_workspace.pk, "next": "/"}, follow=True)
    assert f"<h1>{other_workspace.name}</h1>" in response.content.decode()


def test_the_switcher_refuses_a_workspace_of_others(client, owner, other_workspace):
    client.force_login(owner)
    response = client.post(reverse("accounts:switch"), {"workspace": other_workspace.pk})
    assert response.status_code == 404
