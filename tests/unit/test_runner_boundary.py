"""The runner boundary is a test: runner/ works where Django is not installed.

Each module is imported in a fresh interpreter in which Django, DRF, Channels and
pipelines_ui cannot be imported, as on a compute host. (kombu itself probes for Django and
copes without it.)
"""

import pkgutil
import subprocess
import sys
from pathlib import Path

import runner

ROOT = Path(__file__).resolve().parents[2]
BLOCK_SERVER_PACKAGES = """
import importlib, sys
class NoServer:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('django', 'pipelines_ui', 'rest_framework', 'channels'):
            raise ModuleNotFoundError(f'{name} is not installed on a compute host')
sys.meta_path.insert(0, NoServer())
"""


def runner_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(runner.__path__, prefix="runner."))


def test_every_runner_module_imports_without_django():
    modules = runner_modules()
    assert {"runner.worker", "runner.spec", "runner.executor"} <= set(modules)
    code = BLOCK_SERVER_PACKAGES + (
        f"for name in {modules!r}:\n"
        "    if name != 'runner.__main__':\n"
        "        importlib.import_module(name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
