"""R17: steps queued on a broker that restarts without its data run within 30 s of its return,
at the default STEP_QUEUED_TIMEOUT_S (300 s).

The server's Celery app reads its broker at start-up, so the scenario runs in a child pytest
whose broker is a private redis-server on a free port, never the shared one.
"""

import os
import shutil
import subprocess
import sys

import pytest

from tests.reliability import test_broker_outage as outage
from tests.support import free_port

SETTINGS_LEFT_AT_THEIR_DEFAULTS = ("STEP_QUEUED_TIMEOUT_S", "STEP_LOST_AFTER_S",
                                   "RECONCILE_EVERY_S")


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
@pytest.mark.timeout(300)
def test_queued_steps_run_within_30_s_of_a_broker_restart(tmp_path):
    port = free_port()
    env = {**os.environ, "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
           "PRIVATE_REDIS_PORT": str(port), "PIPELINES_VAR_DIR": str(tmp_path / "var")}
    for name in SETTINGS_LEFT_AT_THEIR_DEFAULTS:
        env.pop(name, None)
    if database_url := outage.private_database_url():
        env["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + "/restart"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/reliability/outage/check_broker_restart.py",
         "-q", "-s", "-p", "no:cacheprovider", "--override-ini",
         "addopts=--import-mode=importlib"],
        cwd=outage.ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
    print(next(line for line in result.stdout.splitlines() if "queued steps ran" in line))
