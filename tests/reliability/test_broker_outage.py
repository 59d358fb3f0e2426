"""R5, R6: submitting works while the broker is down; workers outlive its restarts.

The server's Celery app reads its broker at start-up, so the scenario runs in a child pytest
whose broker is a private redis-server on a free port, never the shared one.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


def private_database_url() -> str | None:
    """The child's own PostgreSQL database: the parent session may hold test_<name> open."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    return url.rsplit("/", 1)[0] + "/outage"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
@pytest.mark.timeout(300)
def test_the_engine_rides_out_broker_outages_restarts_and_resets(tmp_path):
    port = free_port()
    env = {**os.environ, "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
           "PRIVATE_REDIS_PORT": str(port), "PIPELINES_VAR_DIR": str(tmp_path / "var")}
    if database_url := private_database_url():
        env["DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/reliability/outage/check_broker_outage.py",
         "-q", "-p", "no:cacheprovider", "--override-ini",
         "addopts=--import-mode=importlib"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
