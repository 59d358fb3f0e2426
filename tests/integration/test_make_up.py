"""A fresh clone: `make up` installs, migrates, serves the sign-in page and stops on Ctrl-C."""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
START_LIMIT_S = 420  # includes creating .venv and installing on a fresh clone


@pytest.mark.slow
@pytest.mark.timeout(START_LIMIT_S + 120)
def test_make_up_serves_the_sign_in_page_and_stops_cleanly(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DATASTORE_URL",
                        "PIPELINES_VAR_DIR", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")}
    env["PORT"] = str(port)
    log_path = tmp_path / "up.log"
    with open(log_path, "w") as log:
        make = subprocess.Popen(["make", "up"], cwd=clone, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_LIMIT_S
        page = None
        while time.monotonic() < deadline and make.poll() is None:
            try:
                page = httpx.get(f"{url}/accounts/login/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(1)
        output = log_path.read_text()
        assert page is not None, f"no sign-in page within {START_LIMIT_S} s:\n{output[-3000:]}"
        assert page.status_code == 200
        assert "Sign in" in page.text
        assert f"up at {url}/" in output
        assert re.search(r"user 'demo' with password: \S+", output)
        health = _wait_healthy(url)
        assert health["status"] == "ok", health
        assert (clone / "var" / "db.sqlite3").exists()
        tree = psutil.Process(make.pid).children(recursive=True)
        assert len(tree) >= 5  # manage.py up: broker, web, control worker, compute worker
        assert _run_demo_pipeline(clone, {**env, "PIPELINES_SERVER_URL": url}) == "succeeded"
        scored = _run_in_shell(clone, {**env, "PIPELINES_SERVER_URL": url}, RUN_DIABETES)
        assert re.search(r"^status succeeded", scored, re.MULTILINE), scored
        assert re.search(r"^predictions 2 -?\d", scored, re.MULTILINE), scored
    finally:
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            pytest.fail("make up did not stop within 60 s of Ctrl-C")
    assert "Stopped." in log_path.read_text()
    time.sleep(1)
    left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left after Ctrl-C: {left}"
    shutil.rmtree(clone, ignore_errors=True)


RUN_DEMO = """
import time
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
run = submit_run(Pipeline.objects.get(name="Linear fit"), parameters={"rows": 50})
deadline = time.monotonic() + 120
while not run.is_finished and time.monotonic() < deadline:
    time.sleep(0.2)
    run.refresh_from_db()
print("status", run.status, [(s.node, s.state, s.error) for s in run.steps.all()])
"""


# The seeded example: its run registers and deploys the model "diabetes", which then scores
# two rows over HTTP with a token, as an outside client would.
RUN_DIABETES = """
import os, time, httpx
from django.contrib.auth import get_user_model
from pipelines_ui.accounts.models import ApiToken, Workspace
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
started = time.monotonic()
run = submit_run(Pipeline.objects.get(name="Diabetes regression"))
while not run.is_finished and time.monotonic() < started + 150:
    time.sleep(0.2)
    run.refresh_from_db()
print("status", run.status, round(time.monotonic() - started, 1),
      [(s.node, s.state, s.error) for s in run.steps.all()])
_token, key = ApiToken.issue(Workspace.objects.get(slug="demo"),
                             get_user_model().objects.get(username="demo"), "score", ["read"])
rows = [[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02], [0.0] * 10]
answer = httpx.post(os.environ["PIPELINES_SERVER_URL"] + "/api/models/diabetes/versions/1/score",
                    json={"rows": rows}, headers={"Authorization": f"Token {key}"}).json()
print("predictions", len(answer["predictions"]), *answer["predictions"])
"""


def _run_in_shell(clone: Path, env: dict, script: str) -> str:
    """Run a script in `manage.py shell` of the clone, as another process; its stdout."""
    result = subprocess.run([str(clone / ".venv/bin/python"), "manage.py", "shell", "-c",
                             script], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _run_demo_pipeline(clone: Path, env: dict) -> str:
    """Submit the seeded pipeline from another process, as the API would, and wait for it."""
    output = _run_in_shell(clone, env, RUN_DEMO)
    line = next(line for line in output.splitlines() if line.startswith("status"))
    assert "succeeded" in line, line
    return line.split()[1]


def _wait_healthy(url: str, limit_s: float = 30) -> dict:
    deadline = time.monotonic() + limit_s
    body: dict = {}
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/healthz", timeout=5).json()
        if body["status"] == "ok":
            break
        time.sleep(0.5)
    return body
