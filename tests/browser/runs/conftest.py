"""An ASGI live server (uvicorn, in its own process) and real workers reporting to it.

Worker reports arrive at this one server; its broadcasts reach the browser's socket through
the channel layer (Redis, or the embedded Valkey).
"""


import pytest
from django.db import connection

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from tests.support import AsgiServer, WorkerProcess, unique_target


@pytest.fixture
def asgi_server(transactional_db, settings, tmp_path):
    """uvicorn on a free port against the test database; the test's settings point at it."""
    server = AsgiServer.on_test_database(str(connection.settings_dict["NAME"]),
                                         tmp_path / "asgi.log")
    settings.PIPELINES_SERVER_URL = server.url
    settings.STEP_HEARTBEAT_S = 0.5
    yield server
    server.stop()


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

