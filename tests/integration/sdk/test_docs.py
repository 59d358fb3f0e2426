"""docs/sdk.md's worked example runs as written against a live server and a real worker, and
prints what the page says it prints."""

import os
import re
import subprocess
import sys

import pytest

from pipelines_ui.pipelines.models import Endpoint
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PAGE = ROOT / "docs" / "sdk.md"
FILE_BLOCK = re.compile(r"```python\n# file: (\S+)\n(.*?)```", re.S)
OUTPUT_BLOCK = re.compile(r"```text\n(.*?)```", re.S)


def example_files() -> dict[str, str]:
    return {path: code for path, code in FILE_BLOCK.findall(PAGE.read_text())}


def test_the_page_has_the_example_files_and_their_output():
    assert set(example_files()) == {"steps/prep.py", "steps/train.py", "run_pipeline.py"}
    assert "status succeeded" in OUTPUT_BLOCK.search(PAGE.read_text()).group(1)


def test_the_worked_example_runs_and_prints_what_the_page_says(
        engine, target, token, reconciler, tmp_path):
    for path, code in example_files().items():
        # The page's steps run on the "local" target; here, on this test's worker.
        code = code.replace('compute_target="local"', f'compute_target="{target}"')
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(code)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIPELINES_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(PIPELINES_URL=engine.url, PIPELINES_TOKEN=token, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "run_pipeline.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in OUTPUT_BLOCK.search(PAGE.read_text()).group(1).splitlines():
        assert line in done.stdout.splitlines(), (line, done.stdout)
    assert "[prep] prepared 10 rows" in done.stdout
    assert Endpoint.objects.get(name="sdk-example").default_version.number == 1
