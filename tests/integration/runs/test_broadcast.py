"""Run broadcasts: one message per call, in order, sent from a long-lived event loop (the
ASGI server's once it serves), never a wait or an error for the caller."""

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

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


@pytest.fixture
def sent(monkeypatch):
    """What the channel layer is asked to send, with the loop each send ran on. Recorded
    rather than received: the layer's receive() keeps per-instance state tied to one loop,
    which other tests' loops leave behind."""
    calls = []

    async def record(group, message):
        calls.append((asyncio.get_running_loop(), group, message))

    monkeypatch.setattr(get_channel_layer(), "group_send", record)
    return calls


def test_the_events_of_a_call_go_as_one_message_in_order_from_the_server_loop(server_loop,
                                                                               sent):
    broadcast.serve_from(server_loop)
    broadcast.broadcast(7, {"type": "step", "node": "a"}, {"type": "log", "node": "a"})
    broadcast.broadcast(8, {"type": "run", "status": "failed"})
    broadcast.broadcast(8)  # nothing to say: nothing sent
    assert broadcast.wait_sent()
    assert sent == [
        (server_loop, group_name(7), {"type": "run.events", "events": [
            {"type": "step", "node": "a"}, {"type": "log", "node": "a"}]}),
        (server_loop, group_name(8), {"type": "run.events", "events": [
            {"type": "run", "status": "failed"}]}),
    ]


def test_without_a_server_loop_one_loop_of_its_own_sends_every_broadcast(monkeypatch, sent):
    monkeypatch.setattr(broadcast, "_server_loop", None)
    for status in ("running", "succeeded"):
        broadcast.broadcast(9, {"type": "run", "status": status})
    assert broadcast.wait_sent()
    [(first, *_), (second, *_)] = sent
    assert first is second and first.is_running()
    assert [message["events"][0]["status"] for *_, message in sent] == ["running", "succeeded"]


def test_a_failed_broadcast_is_logged_and_never_fails_the_caller(server_loop, monkeypatch,
                                                                caplog):
    async def refuse(group, message):
        raise ConnectionError("the channel layer is down")

    broadcast.serve_from(server_loop)
    monkeypatch.setattr(get_channel_layer(), "group_send", refuse)
    with caplog.at_level(logging.WARNING, logger="pipelines_ui.runs.broadcast"):
        broadcast.broadcast(7, {"type": "run", "status": "failed"})
        assert broadcast.wait_sent()
    assert "broadcast to run 7 failed" in caplog.text


def test_the_caller_does_not_wait_for_a_slow_channel_layer_and_order_is_kept(server_loop,
                                                                            monkeypatch):
    released, received = threading.Event(), []

    async def slow(group, message):
        await asyncio.get_running_loop().run_in_executor(None, released.wait, 10)
        received.append(message["events"][0]["n"])

    broadcast.serve_from(server_loop)
    monkeypatch.setattr(get_channel_layer(), "group_send", slow)
    for n in range(5):
        broadcast.broadcast(7, {"type": "log", "n": n})  # would block 10 s if it waited
    assert received == [] and not broadcast.wait_sent(timeout=0.2)
    released.set()
    assert broadcast.wait_sent() and received == [0, 1, 2, 3, 4]


def test_a_process_that_exits_right_after_a_broadcast_still_sends_it(tmp_path):
    sent_to = tmp_path / "sent"
    script = textwrap.dedent("""
        import asyncio, sys
        from pipelines_ui.runs import broadcast

        class SlowLayer:
            async def group_send(self, group, message):
                await asyncio.sleep(0.3)
                with open(sys.argv[1], "a") as sent:
                    sent.write(group + "\\n")

        broadcast.get_channel_layer = SlowLayer
        broadcast.broadcast(5, {"type": "run", "status": "succeeded"})
    """)
    subprocess.run([sys.executable, "-c", script, str(sent_to)], check=True, timeout=30,
                   cwd=Path(__file__).resolve().parents[3])
    assert sent_to.read_text() == "run.5\n"
