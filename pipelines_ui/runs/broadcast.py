"""The one place that sends run events to browsers (channel-layer group `run.<id>`).

Called only from services, after commit. The database is the truth: a lost broadcast is
logged and the page catches up over REST using each event's `seq` (RELIABILITY R9).

Services are synchronous and run on the server's request threads (or a Celery worker), so
each send is handed to an event loop that lives as long as the process: the ASGI server's own
loop once it serves (the in-memory layer's queues belong to it), else a loop on a thread of
its own. `async_to_sync` would make a loop per call, and channels_redis a new connection with
it: about 7 ms a broadcast against well under one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 5.0

_server_loop: asyncio.AbstractEventLoop | None = None
_own_loop: tuple[int, asyncio.AbstractEventLoop] | None = None  # (pid, loop): a forked
_own_loop_lock = threading.Lock()  # child (a Celery pool process) has no thread to run it


def group_name(run_id: int) -> str:
    return f"run.{run_id}"


def serve_from(loop: asyncio.AbstractEventLoop) -> None:
    """Send from the ASGI server's loop (asgi.py calls this as it serves)."""
    global _server_loop
    _server_loop = loop


def broadcast(run_id: int, *events: dict[str, Any]) -> None:
    """Send the events, in order, as one message; never fails the caller."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    send = layer.group_send(group_name(run_id), {"type": "run.events", "events": list(events)})
    loop = _sending_loop()
    if _running_loop() is loop:  # called on the loop itself: it cannot wait for itself
        loop.create_task(send)
        return
    sent = asyncio.run_coroutine_threadsafe(send, loop)
    try:
        sent.result(timeout=SEND_TIMEOUT_S)
    except Exception:  # the page refetches from the database; never fail the caller
        sent.cancel()
        log.warning("broadcast to run %s failed", run_id, exc_info=True)


def _sending_loop() -> asyncio.AbstractEventLoop:
    global _own_loop
    if _server_loop is not None and _server_loop.is_running():
        return _server_loop
    with _own_loop_lock:
        if _own_loop is None or _own_loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="run-broadcasts", daemon=True).start()
            _own_loop = (os.getpid(), loop)
        return _own_loop[1]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
