"""`manage.py up` as a user starts it: its embedded defaults in a folder of its own, driven from
outside over HTTP with API tokens, as the soak and the restart tests need it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICE_VARS = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DATASTORE_URL",
                "DJANGO_SETTINGS_MODULE")

ISSUE_TOKEN = """
from django.contrib.auth import get_user_model
from pipelines_ui.accounts.models import ApiToken, Workspace
for name in {names!r}:
    _, key = ApiToken.issue(Workspace.objects.get(slug="demo"),
                            get_user_model().objects.get(username="demo"), name,
                            ["read", "run", "publish", "endpoint:invoke"])
    print("KEY", key)
"""


class UpStack:
    """`python manage.py up` in its own var folder, stopped with SIGINT as Ctrl-C would."""

    def __init__(self, var: Path, **settings: str) -> None:
        self.var = var
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
        self.env.update({"PIPELINES_VAR_DIR": str(var), "PORT": str(self.port), **settings})
        self.log_path = var.parent / "up.log"
        var.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen([sys.executable, "manage.py", "up"], cwd=ROOT,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self._wait_up()

    def _wait_up(self, limit_s: float = 120) -> None:
        deadline = time.monotonic() + limit_s
        while "is up at" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"up did not start:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def child(self, name: str) -> psutil.Process:
        """The main process of one supervised child: `web`, `control`, `compute`, `broker`."""
        marks = {"web": "uvicorn", "control": "celery", "compute": "runner",
                 "broker": "valkey-server"}
        for process in psutil.Process(self.process.pid).children():
            try:
                command = process.cmdline()
            except (psutil.ZombieProcess, psutil.NoSuchProcess):  # killed, not yet reaped
                continue
            if any(marks[name] in part for part in command):
                return process
        raise LookupError(f"no {name} process under up")

    def tokens(self, count: int) -> list[str]:
        names = [f"client-{uuid.uuid4().hex[:6]}" for _ in range(count)]
        result = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                                 ISSUE_TOKEN.format(names=names)], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=120, check=True)
        return [line.split()[1] for line in result.stdout.splitlines()
                if line.startswith("KEY ")]

    def stop(self, limit_s: float = 15) -> float:
        """SIGINT to `up` alone, as its own session gets none from a terminal; seconds taken."""
        tree = psutil.Process(self.process.pid).children(recursive=True)
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        took = time.monotonic() - started
        time.sleep(0.5)
        left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert left == [], f"left running after up stopped: {left}"
        assert self.orphans() == [], "processes of this up outlived it"
        return took

    def orphans(self) -> list[psutil.Process]:
        """Processes started for this stack (its var folder in their environment) that no
        longer descend from `up`, such as what a killed child forked."""
        found = []
        for process in psutil.process_iter():
            try:
                if process.environ().get("PIPELINES_VAR_DIR") == str(self.var) and \
                        process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found


class Client:
    """One person's API client: a token, and the calls the tests make."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"},
                                 timeout=30)

    def call(self, method: str, path: str, **kwargs) -> dict:
        """The call's JSON; after a 429 it waits as Retry-After says, as a polite client."""
        while True:
            response = self.http.request(method, path, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        assert response.status_code < 400, (method, path, response.status_code, response.text)
        return response.json()

    def create_pipeline(self, name: str, code: str, steps: int = 2) -> dict:
        """A chain of `steps` python-script steps; a new `nonce` parameter makes them run
        again instead of being reused."""
        nodes = [{"id": f"s{i}", "component": "python-script@1", "compute": "local",
                  "params": {"code": code, "nonce": "${nonce}"},
                  "ports": {"inputs": [{"name": "x"}] if i else [], "outputs": [{"name": "y"}]}}
                 for i in range(steps)]
        edges = [{"from": f"s{i - 1}.y", "to": f"s{i}.x"} for i in range(1, steps)]
        parameters = {"nonce": {"type": "string", "default": ""}}
        return self.call("POST", "/api/pipelines/", json={
            "name": name, "spec": {"parameters": parameters, "nodes": nodes, "edges": edges}})

    def wait_finished(self, run_id: int, limit_s: float = 180) -> dict:
        deadline = time.monotonic() + limit_s
        while True:
            run = self.call("GET", f"/api/runs/{run_id}/")
            if run["status"] in ("succeeded", "failed", "canceled") or \
                    time.monotonic() > deadline:
                return run
            time.sleep(0.3)
