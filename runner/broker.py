"""Celery configuration shared by the server's control worker and the compute workers.

Both sides talk to the same broker; this is the one place that knows how to set up each kind,
so the embedded filesystem transport is configured identically everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES

# A message that no consumer could read is set aside instead of stopping the worker.
TRANSPORT_ALIASES.update(redis="runner.redis_transport:Transport",
                         rediss="runner.redis_transport:Transport")

DEFAULT_VAR_DIR = Path(__file__).resolve().parent.parent / "var"


def var_dir() -> Path:
    """The folder for embedded state (SQLite, broker files, datastore, work dirs)."""
    return Path(os.environ.get("PIPELINES_VAR_DIR") or DEFAULT_VAR_DIR).resolve()


def broker_url() -> str:
    from runner import secrets

    return secrets.get("CELERY_BROKER_URL") or "filesystem://"


def filesystem_transport_options(root: Path) -> dict[str, Any]:
    """Options for kombu's filesystem transport, with its folders created.

    Only for `filesystem://`: other transports pass unknown options on (SQLAlchemy's hands
    them to create_engine() and fails).
    """
    folders = {name: root / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
        # An idle worker looks this often: each step of a chain waits half of it on average.
        # 0.1 s cost a chain step 76 ms beyond a bare subprocess, 0.02 s 17 ms; an idle
        # worker's CPU went from 0.3 % to 0.6 %.
        "polling_interval": 0.02,
    }


def celery_config(
    url: str | None = None, *, visibility_timeout_s: int = 8 * 3600
) -> dict[str, Any]:
    """Settings common to every Celery app of the product (lowercase Celery names)."""
    url = url or broker_url()
    transport_options: dict[str, Any] = {}
    if url.startswith("filesystem://"):
        transport_options = filesystem_transport_options(var_dir() / "broker")
    elif url.startswith(("redis://", "rediss://")):
        # Longer than any step may run, so Redis never redelivers a running step on its own;
        # lost steps are found from heartbeats in the database instead (RELIABILITY R2).
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
