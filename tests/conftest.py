"""Fixtures shared by every test: small, explicit, one tenancy trio."""

import os
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.db import connection

from pipelines_ui.accounts.models import Membership, Workspace
from pipelines_ui.compute.models import ComputeTarget
from runner import broker
from tests.support import AsgiServer

_embedded_valkey: subprocess.Popen | None = None


def pytest_sessionstart(session):
    """With no broker or Redis named, the tests use the embedded Valkey, as `make up` does."""
    global _embedded_valkey
    if os.environ.get("CELERY_BROKER_URL") and os.environ.get("REDIS_URL"):
        return
    root = broker.var_dir()
    if broker.valkey_answers(root):
        raise pytest.UsageError(f"`make up` is serving from {root}: its workers would take the "
                                "tests' steps. Stop it, or set PIPELINES_VAR_DIR for the tests.")
    # Kept in memory only: no test's job may wait in var/ for the next `make up`.
    _embedded_valkey = broker.start_embedded_valkey(
        root, persist=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pytest_configure(config):
    """Secrets are encrypted at rest (S17): unless the environment names a key, the tests' server
    has one of its own, as `make up` writes one to var/."""
    from django.conf import settings

    if not settings.PIPELINES_SECRETS_KEY:
        settings.PIPELINES_SECRETS_KEY = Fernet.generate_key().decode()


def pytest_sessionfinish(session):
    if _embedded_valkey is not None:
        _embedded_valkey.terminate()
        _embedded_valkey.wait(timeout=10)


@pytest.fixture
def workspace(db):
    return Workspace.objects.create(name="Team A", slug="team-a")


@pytest.fixture
def other_workspace(db):
    return Workspace.objects.create(name="Team B", slug="team-b")


def _member(workspace, username, role):
    user = get_user_model().objects.create_user(username, password="a-long-test-password")
    Membership.objects.create(workspace=workspace, user=user, role=role)
    return user


@pytest.fixture
def owner(workspace):
    return _member(workspace, "owner", "admin")


@pytest.fixture
def viewer(workspace):
    return _member(workspace, "viewer", "viewer")


@pytest.fixture
def outsider(other_workspace):
    return _member(other_workspace, "outsider", "admin")


@pytest.fixture
def local_target(workspace):
    return ComputeTarget.objects.create(workspace=workspace, name="local", max_concurrency=2)


@pytest.fixture
def asgi_server(transactional_db, settings, tmp_path):
    """uvicorn on a free port against the test database, its sockets included; the test's
    settings point workers at it."""
    server = AsgiServer.on_test_database(str(connection.settings_dict["NAME"]),
                                         tmp_path / "asgi.log")
    settings.PIPELINES_SERVER_URL = server.url
    settings.STEP_HEARTBEAT_S = 0.5
    yield server
    server.stop()


@pytest.fixture
def engine(settings, live_server, transactional_db):
    """Server settings for real compute workers: they report to the live server."""
    settings.PIPELINES_SERVER_URL = live_server.url
    settings.STEP_HEARTBEAT_S = 0.5
    return live_server
