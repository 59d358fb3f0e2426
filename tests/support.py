"""Real parts for tests: compute worker processes and waiting on runs (no sleeps as asserts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from runner import step_gate

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
        try:
            main = psutil.Process(self.process.pid)
            return [main.pid, *(c.pid for c in main.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the whole worker tree, main process first (RELIABILITY: fault recipes)."""
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


def runs_step_code(pid: int, environ: dict[str, str]) -> bool:
    """Whether a step process is alive and past its gate (runner.step_gate). One still waiting
    there holds the gate's pipe open, has run none of the step's code, and ends when the
    claim is refused."""
    gate = environ.get(step_gate.GATE_VAR)
    if gate is not None:
        fd, _, inode = gate.partition(":")
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == f"pipe:[{inode}]":
                return False
        except FileNotFoundError:
            pass  # the gate is closed: the step went on (or the process is gone)
        except OSError:
            return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
