"""The engine on the embedded defaults: SQLite, and the embedded Valkey for broker and layer.

CI runs the suite on PostgreSQL and Redis; this runs engine tests once more in a child pytest
with none of the service URLs set, as `make up` would.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def pytest_on_embedded_defaults(var_dir, *arguments) -> subprocess.CompletedProcess:
    """A child pytest with none of the service URLs set and its own var folder."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DATASTORE_URL")}
    env["PIPELINES_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "-m", "pytest", *arguments, "-q", "-p", "no:cacheprovider",
         "--override-ini", "addopts=--import-mode=importlib"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=580,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_engine_runs_on_the_embedded_defaults(tmp_path):
    selection = "diamond or reuses_every_step or failing_step or cancel_ends"
    result = pytest_on_embedded_defaults(tmp_path / "var", "tests/integration/runs/test_engine.py",
                                         "-k", selection)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout
    assert (tmp_path / "var" / "valkey").is_dir()  # the embedded Valkey served it


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_diabetes_example_runs_and_scores_on_the_embedded_defaults(tmp_path):
    result = pytest_on_embedded_defaults(tmp_path / "var",
                                         "tests/integration/runs/test_diabetes_example.py")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
    assert (tmp_path / "var" / "valkey").is_dir()  # the embedded Valkey served it
