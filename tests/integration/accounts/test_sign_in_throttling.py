"""Repeated failed sign-ins lock the username, or the client address, for a while (S18).

Each test signs in as users and from addresses of its own: the windows live in the session's
Valkey, shared by every test.
"""

import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from pipelines_ui.accounts import throttling

PASSWORD = "a-long-test-password"
LOGIN = reverse("accounts:login")


@pytest.fixture
def name():
    """A fresh username (or address suffix) per call."""
    return lambda prefix="user": f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_user(username, **extra):
    return get_user_model().objects.create_user(username, password=PASSWORD, **extra)


def address():
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def sign_in(client, username, password, remote_addr, url=LOGIN):
    return client.post(url, {"username": username, "password": password},
                       REMOTE_ADDR=remote_addr)


def fail(client, username, remote_addr, times, url=LOGIN):
    for _ in range(times):
        response = sign_in(client, username, "wrong-password", remote_addr, url)
        assert response.status_code == 200  # the form again, with its error


def signed_in(client):
    return "_auth_user_id" in client.session


def test_five_failures_lock_the_account_even_for_the_right_password(client, db, name):
    user, addr = make_user(name()), address()
    fail(client, user.username, addr, 5)
    response = sign_in(client, user.username, PASSWORD, addr)
    assert response.status_code == 429
    assert ("Too many failed sign-ins for this account; try again in 15 minutes."
            in response.content.decode())
    assert 890 <= int(response["Retry-After"]) <= 900
    assert not signed_in(client)


def test_the_lock_follows_the_username_to_any_address_and_spelling(client, db, name):
    user = make_user(name())
    fail(client, user.username, address(), 5)
    response = sign_in(client, f" {user.username.upper()}", PASSWORD, address())
    assert response.status_code == 429


def test_other_users_still_sign_in_from_the_same_address(client, db, name):
    locked, other, addr = make_user(name()), make_user(name()), address()
    fail(client, locked.username, addr, 5)
    assert sign_in(client, locked.username, PASSWORD, addr).status_code == 429
    response = sign_in(client, other.username, PASSWORD, addr)
    assert response.status_code == 302 and signed_in(client)


def test_too_many_failures_from_one_address_lock_it_for_every_username(client, db, name,
                                                                       settings):
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 3
    user, addr = make_user(name()), address()
    for _ in range(3):
        fail(client, name("nobody"), addr, 1)  # each username fails once only
    response = sign_in(client, user.username, PASSWORD, addr)
    assert response.status_code == 429
    assert "Too many failed sign-ins from this address" in response.content.decode()
    assert sign_in(client, user.username, PASSWORD, address()).status_code == 302


def test_the_lock_ends_when_the_failures_leave_the_window(client, db, name, monkeypatch):
    user, addr = make_user(name()), address()
    fail(client, user.username, addr, 5)
    assert sign_in(client, user.username, PASSWORD, addr).status_code == 429
    later = time.time() + 14 * 60
    monkeypatch.setattr(throttling, "_clock", lambda: later)
    response = sign_in(client, user.username, PASSWORD, addr)
    assert response.status_code == 429 and "try again in 1 minute." in response.content.decode()
    monkeypatch.setattr(throttling, "_clock", lambda: later + 61)
    response = sign_in(client, user.username, PASSWORD, addr)
    assert response.status_code == 302 and signed_in(client)


def test_sign_ins_that_succeed_are_not_failures(client, db, name):
    user, addr = make_user(name()), address()
    fail(client, user.username, addr, 4)
    for _ in range(3):
        assert sign_in(client, user.username, PASSWORD, addr).status_code == 302
        client.post(reverse("accounts:logout"))
    fail(client, user.username, addr, 1)  # the fifth failure
    assert sign_in(client, user.username, PASSWORD, addr).status_code == 429


def test_the_admin_sign_in_is_throttled_too(client, db, name):
    admin, addr = make_user(name("admin"), is_staff=True, is_superuser=True), address()
    url = reverse("admin:login")
    fail(client, admin.username, addr, 5, url)
    response = sign_in(client, admin.username, PASSWORD, addr, url)
    assert response.status_code == 429 and not signed_in(client)
    assert "Too many failed sign-ins for this account" in response.content.decode()


def test_failures_are_counted_without_redis(client, db, name, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    user, addr = make_user(name()), address()
    fail(client, user.username, addr, 5)
    assert sign_in(client, user.username, PASSWORD, addr).status_code == 429
    other = make_user(name())
    assert sign_in(client, other.username, PASSWORD, addr).status_code == 302
