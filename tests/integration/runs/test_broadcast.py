"""Run broadcasts: one message per call, in order, sent from a long-lived event loop (the
ASGI server's once it serves), and never an error for the caller. Uses the configured
channel layer: Redis in CI, in memory without REDIS_URL."""

import asyncio
import logging
import threading

import pytest
from channels.layers import get_channel_layer

from pipelines_ui.runs import broadcast
from pipelines_ui.runs.broadcast import group_name

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def server_loop(monkeypatch):
    """An event loop on a thread of its own, standing for the ASGI server's."""
    monkeypatch.setattr(broadcast, "_server_loop", None)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def on(loop, coroutine, timeout=5.0):
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)


def listen(loop, run_id: int) -> str:
    layer = get_channel_layer()
    channel = on(loop, layer.new_channel())
    on(loop, layer.group_add(group_name(run_id), channel))
    return channel


def test_the_events_of_a_call_arrive_as_one_message_in_order(server_loop):
    channel = listen(server_loop, 7)
    broadcast.serve_from(server_loop)
    broadcast.broadcast(7, {"type": "step", "node": "a"}, {"type": "log", "node": "a"})
    broadcast.broadcast(8, {"type": "run", "status": "failed"})  # another run's group
    message = on(server_loop, get_channel_layer().receive(channel))
    assert message == {"type": "run.events", "events": [{"type": "step", "node": "a"},
                                                         {"type": "log", "node": "a"}]}


def test_without_a_server_loop_one_loop_of_its_own_sends_every_broadcast(monkeypatch):
    monkeypatch.setattr(broadcast, "_server_loop", None)
    loop = broadcast._sending_loop()
    assert loop.is_running() and broadcast._sending_loop() is loop
    channel = listen(loop, 9)
    broadcast.broadcast(9, {"type": "run", "status": "succeeded"})
    message = on(loop, get_channel_layer().receive(channel))
    assert message["events"] == [{"type": "run", "status": "succeeded"}]


def test_a_failed_broadcast_is_logged_and_never_fails_the_caller(server_loop, monkeypatch,
                                                                caplog):
    async def refuse(group, message):
        raise ConnectionError("the channel layer is down")

    broadcast.serve_from(server_loop)
    monkeypatch.setattr(get_channel_layer(), "group_send", refuse)
    with caplog.at_level(logging.WARNING, logger="pipelines_ui.runs.broadcast"):
        broadcast.broadcast(7, {"type": "run", "status": "failed"})
    assert "broadcast to run 7 failed" in caplog.text
