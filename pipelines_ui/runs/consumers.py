"""The run socket: one group per run, joined only by members of its workspace.

Who the caller is was settled in front of the consumer (runs/routing.py): a session user, or
an API token (scope["token"]), or a ticket's holder (with scope["session_key"] when it was
a session). Access is checked at connect and again every RECHECK_EVERY_S while the socket is
open, so a member removed from the workspace, signed out, or whose token was revoked or
expired, stops receiving within a few seconds (docs/reliability.md S8, S14).
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import import_module

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from pipelines_ui.accounts.auth import token_still_valid
from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.runs.broadcast import group_name
from pipelines_ui.runs.queries import visible_runs

RECHECK_EVERY_S = 2.0
CLOSE_NOT_FOUND = 4404  # not a member (or no such run): the same answer, as with the API
CLOSE_REVOKED = 4403


def session_exists(session_key: str | None) -> bool:
    store = import_module(settings.SESSION_ENGINE).SessionStore
    return bool(session_key) and store().exists(session_key)


@database_sync_to_async
def _may_follow(caller, session_key: str | None, run_id: int) -> bool:
    """Whether the caller (a user, or an ApiToken) may still see the run: its credential is
    still good (the token, else the session) and the run is in its workspaces."""
    if isinstance(caller, ApiToken):
        if not token_still_valid(caller):
            return False
    elif not session_exists(session_key):
        return False
    return visible_runs(caller).filter(pk=run_id).exists()


def _caller(scope: dict) -> tuple[object, str | None]:
    """(the user or the token, the session key to keep checking, if any)."""
    if scope.get("token") is not None:
        return scope["token"], None
    session = scope.get("session")
    session_key = scope.get("session_key") or (session.session_key if session else None)
    return scope.get("user"), session_key


class RunConsumer(AsyncJsonWebsocketConsumer):
    recheck_every_s = RECHECK_EVERY_S

    async def connect(self) -> None:
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        self.caller, self.session_key = _caller(self.scope)
        self.revoked = False
        if not await _may_follow(self.caller, self.session_key, self.run_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.watch = asyncio.ensure_future(self._recheck())

    async def _recheck(self) -> None:
        while not self.revoked:
            await asyncio.sleep(self.recheck_every_s)
            if not await _may_follow(self.caller, self.session_key, self.run_id):
                self.revoked = True
                await self.channel_layer.group_discard(self.group, self.channel_name)
                await self.close(code=CLOSE_REVOKED)

    async def disconnect(self, code: int) -> None:
        watch = getattr(self, "watch", None)
        if watch is not None and not watch.done():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """The socket only sends (docs/api.md): what a client sends is dropped unread, so no
        frame (malformed, nested 1000 deep, binary) can crash the consumer (S12)."""

    async def run_events(self, message: dict) -> None:
        for event in message["events"]:
            if self.revoked:
                return
            await self.send_json(event)
