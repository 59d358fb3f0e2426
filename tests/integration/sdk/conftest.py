"""The SDK against a live server and a real compute worker, as a data scientist uses it."""

import threading

import pytest
from django.db import connection

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.runs.services import reconcile_once
from runner.sdk import Client
from tests.support import WorkerProcess, unique_target

SDK_SCOPES = ["read", "run", "publish"]


@pytest.fixture(scope="module")
def worker_target():
    return unique_target()


@pytest.fixture(scope="module")
def worker(worker_target, live_server):
    """One two-slot worker for a module's tests; each test recreates its target row."""
    process = WorkerProcess(worker_target, live_server.url, concurrency=2)
    yield process
    process.stop()


@pytest.fixture
def target(engine, workspace, worker, worker_target) -> str:
    compute = ComputeTarget.objects.create(workspace=workspace, name=worker_target,
                                           max_concurrency=2)
    issue_worker_key(compute)
    return worker_target


@pytest.fixture
def reconciler(engine):
    """What beat does beside the server: one reconciler pass a second (it resends a job the
    broker refused under load, RELIABILITY R5)."""
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
