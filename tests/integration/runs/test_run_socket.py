"""The run page's WebSocket through the real ASGI stack (origin check, session, consumer):
members receive the run's events; anonymous callers and other workspaces' users are refused;
a member who loses membership or signs out is closed within 5 s and receives nothing more
(docs/reliability.md, S8). A session socket is accepted from exactly the origins Django's CSRF
check accepts (S13)."""

import asyncio
import json
import time
from datetime import timedelta

import pytest
import yaml
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from pipelines_ui.accounts import socket_tickets
from pipelines_ui.accounts.models import ApiToken, Membership
from pipelines_ui.asgi import application
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs import consumers, routing
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

    def __init__(self, app, path: str, headers: list[tuple[bytes, bytes]], *,
                 query: str = "", server: tuple[str, int] = ("127.0.0.1", 80),
                 scheme: str = "ws") -> None:
        super().__init__(app, {
            "type": "websocket", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "headers": headers, "subprotocols": [],
            "client": ("127.0.0.1", 50000), "server": server, "scheme": scheme,
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


@pytest.mark.parametrize("frame", [{"text": "[" * 1000}, {"text": "{"}, {"bytes": b"\x00"}],
                         ids=["nested", "malformed", "binary"])
def test_what_a_client_sends_is_dropped_and_the_socket_goes_on(run, viewer, frame):
    session = session_cookie(viewer)

    async def scenario():
        communicator = socket(run.pk, session)
        assert (await communicator.connect())[0]
        await communicator.send_input({"type": "websocket.receive", **frame})
        await send(run.pk, {"type": "run", "status": "running"})
        assert (await communicator.receive_json_from(timeout=5))["status"] == "running"
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


# --- The origin of a session socket (S13) ------------------------------------------------------
# The server is at http://127.0.0.1:8000, as the browser addressed it (Host: 127.0.0.1:8000).

SERVER = ("127.0.0.1", 8000)


def socket_at_8000(run_id: int, session: str, origin: str | None, *, scheme: str = "ws",
                   extra: list[tuple[bytes, bytes]] = ()):
    headers = [(b"host", b"127.0.0.1:8000"), (b"cookie", f"sessionid={session}".encode()),
               *extra]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers,
                                 server=SERVER, scheme=scheme)


def opens(run_id: int, session: str, origin: str | None, **options) -> tuple[bool, int | None]:
    async def scenario():
        communicator = socket_at_8000(run_id, session, origin, **options)
        connected, code = await communicator.connect()
        if connected:
            await communicator.disconnect()
        return connected, code

    return async_to_sync(scenario)()


REFUSED = (False, routing.CLOSE_FORBIDDEN)


@pytest.mark.parametrize(("origin", "expected"), [
    ("http://127.0.0.1:8000", (True, None)),
    ("http://127.0.0.1:9111", REFUSED),  # another port
    ("https://127.0.0.1:8000", REFUSED),  # another scheme
    ("http://127.0.0.1:8000.evil.example", REFUSED),  # our host as a prefix of another
    ("http://127.0.0.1", REFUSED),  # the default port is another port
    (None, REFUSED),  # browsers always send Origin on a socket
    ("null", REFUSED),
], ids=["same origin", "other port", "other scheme", "suffix host", "no port", "missing",
        "null"])
def test_a_session_socket_needs_the_servers_own_origin(run, viewer, origin, expected):
    assert opens(run.pk, session_cookie(viewer), origin) == expected


def test_a_secure_socket_needs_the_https_origin(run, viewer):
    session = session_cookie(viewer)
    assert opens(run.pk, session, "https://127.0.0.1:8000", scheme="wss") == (True, None)
    assert opens(run.pk, session, "http://127.0.0.1:8000", scheme="wss") == REFUSED


def test_the_scheme_comes_from_the_proxy_header_when_settings_name_it(run, viewer, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    session = session_cookie(viewer)
    behind_tls = [(b"x-forwarded-proto", b"https")]
    assert opens(run.pk, session, "https://127.0.0.1:8000", extra=behind_tls) == (True, None)
    assert opens(run.pk, session, "http://127.0.0.1:8000", extra=behind_tls) == REFUSED
    assert opens(run.pk, session, "https://127.0.0.1:8000") == REFUSED


def test_a_trusted_origin_is_accepted(run, viewer, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://pipelines.example.com"]
    session = session_cookie(viewer)
    assert opens(run.pk, session, "https://pipelines.example.com") == (True, None)
    assert opens(run.pk, session, "http://pipelines.example.com") == REFUSED
    assert opens(run.pk, session, "https://pipelines.example.com:8443") == REFUSED


def test_a_wildcard_trusted_origin_accepts_its_subdomains_only(run, viewer, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    session = session_cookie(viewer)
    assert opens(run.pk, session, "https://ui.example.com") == (True, None)
    assert opens(run.pk, session, "https://a.b.example.com") == (True, None)
    assert opens(run.pk, session, "http://ui.example.com") == REFUSED
    assert opens(run.pk, session, "https://example.com.evil.example") == REFUSED
    assert opens(run.pk, session, "https://evilexample.com") == REFUSED


# --- API tokens and tickets (S14) --------------------------------------------------------------


def token_socket(run_id: int, key: str, origin: str | None = None):
    """A socket as a script opens it: `Authorization: Token`, and no Origin unless given."""
    headers = [(b"authorization", f"Token {key}".encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)


def ticket_socket(run_id: int, ticket: str, session: str | None = None):
    headers = [(b"cookie", f"sessionid={session}".encode())] if session else []
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers,
                                 query=f"ticket={ticket}")


def key_for(user, workspace, scopes=("read",), **options) -> str:
    return ApiToken.issue(workspace, user, "script", list(scopes), **options)[1]


def ticket_for(key: str) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.post("/api/socket-tickets/", format="json")
    assert response.status_code == 201, response.content
    return response.json()


def connect(communicator) -> tuple[bool, int | None]:
    async def scenario():
        connected, code = await communicator.connect()
        if connected:
            await communicator.disconnect()
        return connected, code

    return async_to_sync(scenario)()


def receives_the_runs_events(communicator, run_id: int) -> None:
    async def scenario():
        connected, code = await communicator.connect()
        assert connected, code
        await send(run_id, {"type": "run", "status": "running"})
        assert await communicator.receive_json_from(timeout=5) == {"type": "run",
                                                                   "status": "running"}
        await communicator.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("origin", [None, "http://evil.example"], ids=["no origin", "foreign"])
def test_a_token_socket_receives_the_runs_events(run, viewer, workspace, origin):
    """The token is the credential, not ambient as a cookie is: any Origin, or none."""
    receives_the_runs_events(token_socket(run.pk, key_for(viewer, workspace), origin), run.pk)


def test_a_token_of_another_workspace_is_refused_though_its_user_is_a_member(
        run, owner, other_workspace):
    Membership.objects.create(workspace=other_workspace, user=owner, role="admin")
    key = key_for(owner, other_workspace)
    assert connect(token_socket(run.pk, key)) == (False, consumers.CLOSE_NOT_FOUND)


@pytest.mark.parametrize("how", ["expired", "revoked", "wrong", "user deactivated"])
def test_a_token_that_is_no_longer_good_is_refused(run, viewer, workspace, how):
    key = key_for(viewer, workspace)
    token = ApiToken.objects.get(user=viewer)
    if how == "expired":
        ApiToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1))
    elif how == "revoked":
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    elif how == "wrong":
        key = key[:-4] + "xxxx"
    else:
        type(viewer).objects.filter(pk=viewer.pk).update(is_active=False)
    assert connect(token_socket(run.pk, key)) == (False, routing.CLOSE_UNAUTHENTICATED)


def test_a_token_without_the_read_scope_is_refused(run, owner, workspace):
    key = key_for(owner, workspace, scopes=("endpoint:invoke",))
    assert connect(token_socket(run.pk, key)) == (False, routing.CLOSE_FORBIDDEN)


def test_a_token_revoked_while_its_socket_is_open_is_closed_within_5_s(
        run, viewer, workspace, fast_recheck):
    key = key_for(viewer, workspace)

    async def scenario():
        communicator = token_socket(run.pk, key)
        connected, _ = await communicator.connect()
        assert connected
        await database_sync_to_async(
            ApiToken.objects.filter(user=viewer).update)(revoked_at=timezone.now())
        message = await communicator.receive_output(timeout=5)
        assert message == {"type": "websocket.close", "code": consumers.CLOSE_REVOKED}

    async_to_sync(scenario)()


def test_a_ticket_opens_one_socket_once(run, viewer, workspace):
    answer = ticket_for(key_for(viewer, workspace))
    assert parse_datetime(answer["expires_at"]) <= timezone.now() + timedelta(seconds=61)
    receives_the_runs_events(ticket_socket(run.pk, answer["ticket"]), run.pk)
    assert connect(ticket_socket(run.pk, answer["ticket"])) == (
        False, routing.CLOSE_UNAUTHENTICATED)


def test_a_ticket_is_refused_after_it_expires(run, viewer, workspace, monkeypatch):
    monkeypatch.setattr(socket_tickets, "TICKET_TTL_S", 0.2)
    ticket = ticket_for(key_for(viewer, workspace))["ticket"]
    time.sleep(0.5)
    assert connect(ticket_socket(run.pk, ticket)) == (False, routing.CLOSE_UNAUTHENTICATED)


def test_a_ticket_reaches_only_its_tokens_workspace(run, owner, other_workspace):
    Membership.objects.create(workspace=other_workspace, user=owner, role="admin")
    ticket = ticket_for(key_for(owner, other_workspace))["ticket"]
    assert connect(ticket_socket(run.pk, ticket)) == (False, consumers.CLOSE_NOT_FOUND)


def test_a_ticket_of_a_token_revoked_since_is_refused(run, viewer, workspace):
    ticket = ticket_for(key_for(viewer, workspace))["ticket"]
    ApiToken.objects.filter(user=viewer).update(revoked_at=timezone.now())
    assert connect(ticket_socket(run.pk, ticket)) == (False, routing.CLOSE_UNAUTHENTICATED)


def test_a_made_up_ticket_is_refused_and_the_session_beside_it_is_not_used(run, viewer):
    session = session_cookie(viewer)
    assert connect(ticket_socket(run.pk, "made-up", session)) == (
        False, routing.CLOSE_UNAUTHENTICATED)


def test_a_ticket_asked_for_by_a_session_follows_that_session(run, viewer):
    client = APIClient()
    client.force_login(viewer)
    ticket = client.post("/api/socket-tickets/", format="json").json()["ticket"]
    receives_the_runs_events(ticket_socket(run.pk, ticket), run.pk)
    second = client.post("/api/socket-tickets/", format="json").json()["ticket"]
    client.logout()
    assert connect(ticket_socket(run.pk, second)) == (False, routing.CLOSE_UNAUTHENTICATED)


def test_tickets_need_a_token_with_the_read_scope(viewer, workspace):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key_for(viewer, workspace, ('run',))}")
    assert client.post("/api/socket-tickets/", format="json").status_code == 403
    assert APIClient().post("/api/socket-tickets/", format="json").status_code == 401


def test_the_ticket_route_is_in_the_schema(db):
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)
    answer = schema["paths"]["/api/socket-tickets/"]["post"]["responses"]["201"]
    name = answer["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert set(schema["components"]["schemas"][name]["properties"]) == {"ticket", "expires_at"}
