"""The one place that sends run events to browsers (channel-layer group `run.<id>`).

Called only from services, after commit. The database is the truth: a lost broadcast is
logged and the page catches up over REST using each event's `seq` (RELIABILITY R9).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def group_name(run_id: int) -> str:
    return f"run.{run_id}"


def broadcast(run_id: int, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(run_id), {"type": "run.event", "event": event})
    except Exception:  # the page refetches from the database; never fail the caller
        log.warning("broadcast to run %s failed", run_id, exc_info=True)
