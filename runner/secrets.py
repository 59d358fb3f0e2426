"""Keep the worker's own credentials out of its environment (docs/reliability.md S6).

A step can read its parent's /proc/<ppid>/environ. So `python -m runner worker` moves the
broker URL and the worker key out of the environment: it hands them to a fresh copy of itself
through an inherited pipe and re-executes with a scrubbed environment. The worker then finds
them here, in memory only. (Process isolation is not a sandbox for hostile code: a step
running as the same user can still attach to its parent; run workers as another user for that.)
"""

from __future__ import annotations

import json
import os
import sys

SECRET_VARIABLES = ("CELERY_BROKER_URL", "PIPELINES_WORKER_KEY", "REDIS_URL", "DATABASE_URL")
FD_VARIABLE = "PIPELINES_SECRETS_FD"

_secrets: dict[str, str] = {}


def get(name: str) -> str | None:
    """A credential handed over at start-up, else the environment's (tests, tools)."""
    return _secrets.get(name) or os.environ.get(name)


def reexec_without_secrets(argv: list[str]) -> None:
    """Re-execute this command with the secrets passed through a pipe; never returns.

    Does nothing in the re-executed process, which loads them from the pipe instead.
    """
    if FD_VARIABLE in os.environ:
        _load(int(os.environ.pop(FD_VARIABLE)))
        return
    found = {name: os.environ[name] for name in SECRET_VARIABLES if os.environ.get(name)}
    if not found:
        return
    read_fd, write_fd = os.pipe()
    os.write(write_fd, json.dumps(found).encode())  # far below the pipe's buffer size
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    env[FD_VARIABLE] = str(read_fd)
    os.execve(sys.executable, [sys.executable, "-m", "runner", *argv], env)


def _load(fd: int) -> None:
    with os.fdopen(fd, "rb") as pipe:
        _secrets.update(json.loads(pipe.read() or b"{}"))
