"""Real compute workers against the live server, on the configured broker."""

import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from tests.support import WorkerProcess, unique_target


@pytest.fixture(scope="module")
def shared_worker_target():
    return unique_target()


@pytest.fixture(scope="module")
def shared_worker(shared_worker_target, live_server):
    """One two-slot worker for a module's tests; each test recreates its target row."""
    worker = WorkerProcess(shared_worker_target, live_server.url, concurrency=2)
    yield worker
    worker.stop()


@pytest.fixture
def target(engine, workspace, shared_worker, shared_worker_target):
    target = ComputeTarget.objects.create(workspace=workspace, name=shared_worker_target,
                                          max_concurrency=2)
    issue_worker_key(target)
    return target
