"""Fixtures shared by every test: small, explicit, one tenancy trio (STYLE 19)."""

import pytest
from django.contrib.auth import get_user_model

from pipelines_ui.accounts.models import Membership, Workspace
from pipelines_ui.compute.models import ComputeTarget


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
def engine(settings, live_server, transactional_db):
    """Server settings for real compute workers: they report to the live server."""
    settings.PIPELINES_SERVER_URL = live_server.url
    settings.STEP_HEARTBEAT_S = 0.5
    return live_server
