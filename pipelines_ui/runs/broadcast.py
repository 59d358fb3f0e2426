"""The one place that sends run events to browsers (channel-layer group `run.<id>`).

Called only from the run engine (runs/engine/), after commit. The database is the truth: a
lost broadcast is logged and the page catches up over REST using the `first` index of each
log and metric event (docs/reliability.md R9).

Services are synchronous and run on the server's request threads (or a Celery worker), so
each send is handed to an event loop that lives as long as the process: the ASGI server's own
loop once it serves (its channel layer connections belong to it), else a loop on a thread of
its own. `async_to_sync` would make a loop per call, and channels_redis a new connection with
it: about 7 ms a broadcast against well under one. The caller does not wait for the send
(a worker's claim is answered sooner); one task per loop sends in the order of the calls.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections import deque
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 5.0
MAX_WAITING = 10_000  # messages not yet sent; past that the channel layer is down or stuck

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
    """Send the events, in order, as one message, after those of earlier calls; returns at
    once and never fails the caller."""
    if not events or get_channel_layer() is None:
        return
    _outbox(_sending_loop()).put(run_id, {"type": "run.events", "events": list(events)})


def wait_sent(timeout: float = SEND_TIMEOUT_S) -> bool:
    """Wait until what this process broadcast so far has been handed to the channel layer
    (or given up on); False after the timeout. Not from the sending loop itself."""
    loop = _sending_loop()
    if _running_loop() is loop:
        raise RuntimeError("wait_sent() would block the loop that sends")
    done = threading.Event()
    _outbox(loop).put(None, done.set)
    return done.wait(timeout)


class _Outbox:
    """The broadcasts waiting to be sent from one loop, and the task that sends them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: deque[tuple[int | None, Any]] = deque()  # touched on the loop only
        self.sending: asyncio.Task | None = None

    def put(self, run_id: int | None, message: Any) -> None:
        if _running_loop() is self.loop:
            self._add(run_id, message)
            return
        try:
            self.loop.call_soon_threadsafe(self._add, run_id, message)
        except RuntimeError:  # the loop closed: the server is shutting down
            log.warning("broadcast to run %s dropped: its event loop is closed", run_id)

    def _add(self, run_id: int | None, message: Any) -> None:
        if len(self.waiting) >= MAX_WAITING and run_id is not None:
            log.warning("broadcast to run %s dropped: %s not sent yet", run_id, MAX_WAITING)
            return
        self.waiting.append((run_id, message))
        if self.sending is None:
            self.sending = self.loop.create_task(self._send_all())

    async def _send_all(self) -> None:
        try:
            while self.waiting:
                run_id, message = self.waiting.popleft()
                if run_id is None:
                    message()  # a wait_sent() mark
                    continue
                try:
                    await asyncio.wait_for(
                        get_channel_layer().group_send(group_name(run_id), message),
                        SEND_TIMEOUT_S)
                except Exception:  # the page refetches from the database
                    log.warning("broadcast to run %s failed", run_id, exc_info=True)
        finally:
            self.sending = None


_outboxes: dict[asyncio.AbstractEventLoop, _Outbox] = {}


def _outbox(loop: asyncio.AbstractEventLoop) -> _Outbox:
    outbox = _outboxes.get(loop)
    if outbox is None:
        outbox = _outboxes.setdefault(loop, _Outbox(loop))
    return outbox


def _sending_loop() -> asyncio.AbstractEventLoop:
    global _own_loop
    if _server_loop is not None and _server_loop.is_running():
        return _server_loop
    with _own_loop_lock:
        if _own_loop is None or _own_loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="run-broadcasts", daemon=True).start()
            _own_loop = (os.getpid(), loop)
            atexit.register(_send_before_exit, os.getpid())
        return _own_loop[1]


def _send_before_exit(pid: int) -> None:
    """A command or worker that ends soon after its last broadcast still sends it."""
    if pid == os.getpid() and not wait_sent(timeout=1.0):
        log.warning("run broadcasts not sent before exit")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
