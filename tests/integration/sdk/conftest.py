"""The SDK against a live server and a real compute worker, as a data scientist uses it."""

import threading

import pytest
from django.db import connection

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.runs.engine import reconcile_once
from runner.sdk import Client

SDK_SCOPES = ["read", "run", "publish"]


@pytest.fixture
def target(target) -> str:
    """The name of a compute target with a live two-slot worker (tests/integration/conftest.py),
    as SDK code names it."""
    return target.name


@pytest.fixture
def reconciler(engine):
    """What beat does beside the server: one reconciler pass a second (it resends a job the
    broker refused under load, docs/reliability.md R5)."""
    stop = threading.Event()

    def loop():
        try:
            while not stop.wait(1.0):
                reconcile_once()
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


@pytest.fixture
def token(owner, workspace) -> str:
    return ApiToken.issue(workspace, owner, "sdk", SDK_SCOPES)[1]


@pytest.fixture
def client(engine, token, reconciler):
    with Client(engine.url, token) as sdk:
        yield sdk
