"""An ASGI live server (uvicorn, in its own process) and real workers reporting to it.

Worker reports arrive at this one server; its broadcasts reach the browser's socket through
the channel layer (Redis, or the embedded Valkey).
"""


import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from tests.support import WorkerProcess, unique_target


@pytest.fixture
def live_target(asgi_server, workspace):
    return ComputeTarget.objects.create(workspace=workspace, name=unique_target(),
                                        max_concurrency=2)


@pytest.fixture
def live_worker(live_target, asgi_server):
    """A real compute worker for live_target, reporting to the ASGI server."""
    process = WorkerProcess(live_target.name, asgi_server.url, concurrency=2,
                            key=issue_worker_key(live_target))
    yield process
    process.stop()

