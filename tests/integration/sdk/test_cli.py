"""`python -m runner ...` from a terminal: list, submit a spec file, follow a run to its end
(the exit status is the run's end), publish."""

import json
import os
import subprocess
import sys

import pytest

from pipelines_ui.pipelines.models import Endpoint
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def cli(*args, url, token, env=None):
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("PIPELINES_") and k != "DJANGO_SETTINGS_MODULE"}
    environment.update(env or {})
    credentials = ["--url", url, "--token", token] if token else []
    return subprocess.run([sys.executable, "-m", "runner", *args, *credentials], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=180)


def spec_file(tmp_path, target, code):
    spec = {"parameters": {"word": {"type": "string", "default": "hello"}}, "edges": [],
            "nodes": [{"id": "say", "component": "python-script@1", "compute": target,
                       "params": {"code": code, "word": "${word}"}}]}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


SAY = "from runner import context\nprint('said', context.param('word'))\n"


def test_the_cli_submits_a_spec_file_and_follows_the_run_to_its_end(
        engine, target, token, reconciler, tmp_path):
    path = spec_file(tmp_path, target, SAY)
    submitted = cli("submit", str(path), "--pipeline", "greeting", "--param", "word=hi",
                    url=engine.url, token=token)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.split()[1]
    followed = cli("follow", run_id, "--poll", "0.3", url=engine.url, token=token)
    assert followed.returncode == 0, followed.stderr
    assert "[say] said hi" in followed.stdout
    assert "1/1 steps done (say succeeded)" in followed.stdout
    assert followed.stdout.rstrip().endswith(f"run {run_id} succeeded")
    listed = cli("runs", "--pipeline", "greeting", url=engine.url, token=token)
    assert listed.returncode == 0
    assert [run_id, "greeting", "succeeded"] == listed.stdout.splitlines()[1].split()[:3]
    pipelines = cli("pipelines", url=engine.url, token=token)
    assert "greeting" in pipelines.stdout


def test_following_a_failed_run_exits_1(engine, target, token, reconciler, tmp_path):
    path = spec_file(tmp_path, target, "raise SystemExit('broken on purpose')\n")
    followed = cli("submit", str(path), "--pipeline", "broken", "--follow", "--param",
                   "word=x", url=engine.url, token=token)
    assert followed.returncode == 1, followed.stdout + followed.stderr
    assert "1/1 steps done (say failed)" in followed.stdout
    assert "broken on purpose" in followed.stdout


def test_the_cli_publishes_a_version_to_an_endpoint(engine, target, token, tmp_path):
    path = spec_file(tmp_path, target, SAY)
    assert cli("submit", str(path), "--pipeline", "greeting", url=engine.url,
               token=token).returncode == 0
    published = cli("publish", "greeting", "--message", "first", "--endpoint", "greet",
                    url=engine.url, token=token)
    assert published.returncode == 0, published.stderr
    assert "published greeting version 1" in published.stdout
    assert Endpoint.objects.get(name="greet").default_version.number == 1


def test_bad_input_is_one_line_that_says_what_to_do(engine, target, token, tmp_path):
    missing = cli("pipelines", url=engine.url, token="")
    assert missing.returncode == 2 and "PIPELINES_TOKEN" in missing.stderr
    wrong = cli("pipelines", url=engine.url, token="pui_nope_nope")
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: 401")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"nodes": [{"id": "x", "component": "nope@1"}]}))
    refused = cli("submit", str(invalid), "--pipeline", "p", url=engine.url, token=token)
    assert refused.returncode == 1 and "nope@1" in refused.stderr
