"""An ASGI live server (uvicorn, in its own process) and real workers reporting to it.

Worker reports arrive at this one server; its broadcasts reach the browser's socket through
the channel layer (Redis, or the embedded Valkey).
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.db import connection

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from tests.support import ROOT, WorkerProcess, unique_target, wait_until

SERVER = Path(__file__).with_name("asgi_server.py")


class AsgiServer:
    """uvicorn serving pipelines_ui.asgi on `port`; restartable on the same port (R9)."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVER), str(self.port)], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answering, timeout=30, interval=0.2)

    def _answering(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the ASGI server exited:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/accounts/login/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def asgi_server(transactional_db, settings, tmp_path):
    """uvicorn on a free port against the test database; the test's settings point at it."""
    port = free_port()
    env = {**os.environ, "PIPELINES_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
           "PIPELINES_SERVER_URL": f"http://127.0.0.1:{port}", "STEP_HEARTBEAT_S": "0.5",
           "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "pipelines_ui.settings"}
    server = AsgiServer(port, env, tmp_path / "asgi.log")
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

