"""The run page's WebSocket through the real ASGI stack (origin check, session, consumer):
members receive the run's events; anonymous callers and other workspaces' users are refused;
a member who loses membership or signs out is closed within 5 s and receives nothing more
(docs/reliability.md, S8)."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.contrib.sessions.models import Session
from django.test import Client

from pipelines_ui.accounts.models import Membership
from pipelines_ui.asgi import application
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs import consumers
from pipelines_ui.runs.broadcast import group_name
from pipelines_ui.runs.models import Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

SPEC = {"parameters": {}, "edges": [], "nodes": [
    {"id": "only", "component": "python-script@1", "compute": "local"}]}


@pytest.fixture
def run(workspace):
    pipeline = Pipeline.objects.create(workspace=workspace, name="p", spec=SPEC)
    return Run.objects.create(workspace=workspace, pipeline=pipeline, spec=SPEC)


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """A channel layer of its own for each test: each scenario runs on an event loop of its
    own, and a Redis layer still receiving on an earlier loop refuses to receive on another
    ("Two event loops are trying to receive() on one channel layer at once")."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def fast_recheck(monkeypatch):
    monkeypatch.setattr(consumers.RunConsumer, "recheck_every_s", 0.5)


class WebsocketCommunicator(ApplicationCommunicator):
    """Channels' WebsocketCommunicator, cut down: channels.testing imports daphne for its live
    server, which this project does not install."""

    def __init__(self, app, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(app, {
            "type": "websocket", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers, "subprotocols": [], "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        })

    async def connect(self, timeout: float = 5) -> tuple[bool, int | None]:
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(timeout)
        if answer["type"] == "websocket.close":
            # As a server does once the socket is closed: the consumer then leaves its loop,
            # which otherwise still waits on the channel layer when this test's loop ends.
            await self.disconnect(answer.get("code", 1000))
            return False, answer.get("code", 1000)
        return True, None

    async def receive_json_from(self, timeout: float = 5) -> dict:
        answer = await self.receive_output(timeout)
        assert answer["type"] == "websocket.send", answer
        return json.loads(answer["text"])

    async def disconnect(self, code: int = 1000) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(1)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def socket(run_id: int, session: str | None = None, origin: str = "http://127.0.0.1"):
    headers = [(b"origin", origin.encode())]
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)


async def send(run_id: int, event: dict) -> None:
    await get_channel_layer().group_send(group_name(run_id),
                                         {"type": "run.events", "events": [event]})


def test_a_member_receives_the_runs_events(run, viewer):
    session = session_cookie(viewer)

    async def scenario():
        communicator = socket(run.pk, session)
        connected, _ = await communicator.connect()
        assert connected
        await send(run.pk, {"type": "log", "node": "only", "attempt": 1, "first": 1,
                            "lines": [{"stream": "stdout", "text": "hi", "time": 1.0}]})
        assert (await communicator.receive_json_from(timeout=5))["lines"][0]["text"] == "hi"
        await send(run.pk + 1, {"type": "run", "status": "failed"})  # another run's group
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("who", ["outsider", "anonymous"])
def test_a_non_member_is_refused(run, outsider, who):
    session = session_cookie(outsider) if who == "outsider" else None

    async def scenario():
        communicator = socket(run.pk, session)
        connected, code = await communicator.connect()
        assert not connected
        assert code == consumers.CLOSE_NOT_FOUND

    async_to_sync(scenario)()


def test_a_socket_from_another_origin_is_refused(run, owner):
    session = session_cookie(owner)

    async def scenario():
        communicator = socket(run.pk, session, origin="http://evil.example")
        connected, _ = await communicator.connect()
        assert not connected

    async_to_sync(scenario)()


def test_an_unknown_run_is_refused_like_a_foreign_one(run, owner):
    session = session_cookie(owner)

    async def scenario():
        connected, code = await socket(run.pk + 999, session).connect()
        assert (connected, code) == (False, consumers.CLOSE_NOT_FOUND)

    async_to_sync(scenario)()


@pytest.mark.parametrize("how", ["membership revoked", "signed out"])
def test_a_member_who_loses_access_is_closed_within_5_s(run, viewer, fast_recheck, how):
    session = session_cookie(viewer)

    @database_sync_to_async
    def revoke():
        if how == "membership revoked":
            Membership.objects.filter(user=viewer).delete()
        else:
            Session.objects.filter(session_key=session).delete()

    async def scenario():
        communicator = socket(run.pk, session)
        connected, _ = await communicator.connect()
        assert connected
        await revoke()
        loop = asyncio.get_running_loop()
        started = loop.time()
        message = await communicator.receive_output(timeout=5)
        assert message == {"type": "websocket.close", "code": consumers.CLOSE_REVOKED}
        assert loop.time() - started < 5
        await send(run.pk, {"type": "run", "status": "failed"})
        assert await communicator.receive_nothing(timeout=0.3)

    async_to_sync(scenario)()
