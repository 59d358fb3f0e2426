"""Run sockets of scripts against a real server (uvicorn serving pipelines_ui.asgi, as in
production): a token in `Authorization`, or a ticket from the REST API in `?ticket=`, opens a
run's socket and receives its events; a refused one fails its handshake (docs/reliability.md
S14). tests/integration/runs/test_run_socket.py holds the rest of the matrix, in process."""

import json

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers, get_channel_layer
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.broadcast import group_name
from pipelines_ui.runs.models import Run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SPEC = {"parameters": {}, "edges": [], "nodes": [
    {"id": "only", "component": "python-script@1", "compute": "local"}]}


@pytest.fixture
def run(workspace):
    pipeline = Pipeline.objects.create(workspace=workspace, name="p", spec=SPEC)
    return Run.objects.create(workspace=workspace, pipeline=pipeline, spec=SPEC)


@pytest.fixture
def key(viewer, workspace) -> str:
    return ApiToken.issue(workspace, viewer, "script", ["read"])[1]


def socket_url(asgi_server, run_id: int, query: str = "") -> str:
    return f"ws://127.0.0.1:{asgi_server.port}/ws/runs/{run_id}/{query}"


def broadcast_until_received(socket, run_id: int) -> dict:
    """Send an event to the run's group (through the channel layer the server listens on)
    until the socket shows it: the server joins the group as it accepts, a moment after."""
    channel_layers.backends.clear()
    event = {"type": "run", "id": run_id, "status": "running"}
    for _ in range(20):
        async_to_sync(get_channel_layer().group_send)(
            group_name(run_id), {"type": "run.events", "events": [event]})
        try:
            return json.loads(socket.recv(timeout=0.5))
        except TimeoutError:
            continue
    raise AssertionError("no event reached the socket")


def test_a_token_socket_receives_the_runs_events(asgi_server, run, key):
    with connect(socket_url(asgi_server, run.pk),
                 additional_headers={"Authorization": f"Token {key}"}) as socket:
        assert broadcast_until_received(socket, run.pk)["status"] == "running"


def test_a_ticket_opens_the_socket_once(asgi_server, run, key):
    answer = httpx.post(f"{asgi_server.url}/api/socket-tickets/",
                        headers={"Authorization": f"Token {key}"})
    assert answer.status_code == 201, answer.text
    url = socket_url(asgi_server, run.pk, f"?ticket={answer.json()['ticket']}")
    with connect(url) as socket:
        assert broadcast_until_received(socket, run.pk)["status"] == "running"
    with pytest.raises(InvalidStatus):
        connect(url)


def test_a_token_of_another_workspace_fails_the_handshake(asgi_server, run, outsider,
                                                         other_workspace):
    theirs = ApiToken.issue(other_workspace, outsider, "theirs", ["read"])[1]
    with pytest.raises(InvalidStatus):
        connect(socket_url(asgi_server, run.pk),
                additional_headers={"Authorization": f"Token {theirs}"})
