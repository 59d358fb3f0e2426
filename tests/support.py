"""Real parts for tests: compute worker processes and waiting on runs (no sleeps as asserts)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil

from runner import context, step_launch

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """`python -m runner worker --target NAME` as a subprocess, stopped at the end."""

    def __init__(self, target: str, server_url: str, *, concurrency: int = 1,
                 key: str = "", name: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.target = target
        self.name = name
        self.log_path = ROOT / "var" / "test-workers" / f"{target}-{uuid.uuid4().hex[:6]}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PIPELINES_SERVER_URL": server_url, "PIPELINES_WORKER_KEY": key,
               "PIPELINES_WORKER_HEARTBEAT_S": "1", **(extra_env or {})}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runner", "worker", "--target", target,
                 "--concurrency", str(concurrency), "--loglevel", "INFO",
                 *(["--name", name] if name else [])],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self, limit_s: float = 60) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.output()}")
            if " ready." in self.output():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready within {limit_s} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> list[int]:
        """The worker's processes, its steps' and the interpreters waiting for its next steps."""
        try:
            main = psutil.Process(self.process.pid)
            return [main.pid, *(c.pid for c in main.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def worker_pids(self) -> list[int]:
        """The worker's own processes: its main process and its pool's."""
        return sorted(pid for pid in self.pids() if _is_worker(pid))

    def kill(self) -> None:
        """SIGKILL the whole worker tree, main process first (docs/reliability.md R2, R16)."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wait_until(predicate, *, timeout: float = 60, interval: float = 0.1, tick=None):
    """Poll `predicate` until it returns something truthy; `tick` runs each round."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def unique_target() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _is_worker(pid: int) -> bool:
    try:
        return "runner" in psutil.Process(pid).cmdline()[1:3]  # python -m runner worker ...
    except psutil.Error:
        return False


def is_step_template(process: psutil.Process) -> bool:
    """Whether the process is an interpreter kept to fork steps from (runner.step_launch): it
    runs none of a step's code, stays in "/", where it started, and holds its socket open. A
    step forked from it shares its command line, but its parent is that template."""
    try:
        argv = process.cmdline()
        if argv[1:2] != [step_launch.__file__] or process.cwd() != "/":
            return False
        parent = process.parent()
        if parent is not None and parent.cmdline()[1:2] == [step_launch.__file__]:
            return False
        return os.readlink(f"/proc/{process.pid}/fd/{argv[2]}").startswith("socket:")
    except (psutil.Error, IndexError, OSError):
        return False


def step_of(process: psutil.Process) -> tuple[str, str] | None:
    """(run id, attempt) of a process that runs step code, else None.

    A step started as itself has them in /proc/<pid>/environ; one forked from a template
    (runner.step_launch) has only its working directory, <work>/<run>/<node>-a<attempt>-<x>/code.
    """
    try:
        environ = process.environ()
        if context.RUN_ID_VAR in environ:
            return environ[context.RUN_ID_VAR], environ[context.ATTEMPT_VAR]
        cwd = Path(process.cwd())
    except psutil.Error:
        return None
    attempt = re.fullmatch(r".*-a(\d+)-[^-]+", cwd.parent.name)
    if cwd.name != "code" or attempt is None:
        return None
    return cwd.parent.parent.name, attempt[1]


def runs_step_code(process: psutil.Process) -> bool:
    """Whether a process of a step is alive and is not a template it was forked from."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE and not is_step_template(process)
    except psutil.Error:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_private_redis(port: int | str) -> subprocess.Popen:
    """A redis-server of the test's own on `port`, keeping nothing on disk."""
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                      capture_output=True).stdout.strip() == b"PONG")
    return server


class AsgiServer:
    """uvicorn serving pipelines_ui.asgi on `port`; restartable on the same port (R9)."""

    SCRIPT = ROOT / "tests" / "asgi_server.py"

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.start()

    @classmethod
    def on_test_database(cls, database_name: str, log_path: Path) -> AsgiServer:
        """A server on a free port against the test database, as workers report to it."""
        port = free_port()
        env = {**os.environ, "PIPELINES_TEST_DB_NAME": database_name,
               "PIPELINES_SERVER_URL": f"http://127.0.0.1:{port}", "STEP_HEARTBEAT_S": "0.5",
               "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "pipelines_ui.settings"}
        return cls(port, env, log_path)

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(self.SCRIPT), str(self.port)], cwd=ROOT, env=self.env,
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
