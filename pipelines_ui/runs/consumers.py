"""The run page's WebSocket: one group per run, joined only by members of its workspace.

Membership is checked at connect and again every RECHECK_EVERY_S while the socket is open, so
a member removed from the workspace, or signed out, stops receiving within a few seconds
(docs/reliability.md S8).
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import import_module

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from pipelines_ui.runs.broadcast import group_name
from pipelines_ui.runs.queries import visible_runs

RECHECK_EVERY_S = 2.0
CLOSE_NOT_FOUND = 4404  # not a member (or no such run): the same answer, as with the API
CLOSE_REVOKED = 4403


@database_sync_to_async
def _can_see(user, run_id: int) -> bool:
    return visible_runs(user).filter(pk=run_id).exists()


@database_sync_to_async
def _session_alive(session_key: str | None) -> bool:
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore
    return store().exists(session_key)


class RunConsumer(AsyncJsonWebsocketConsumer):
    recheck_every_s = RECHECK_EVERY_S

    async def connect(self) -> None:
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        self.user = self.scope.get("user")
        self.revoked = False
        if not await _can_see(self.user, self.run_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        session = self.scope.get("session")
        self.session_key = session.session_key if session is not None else None
        self.group = group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.watch = asyncio.ensure_future(self._recheck())

    async def _recheck(self) -> None:
        while not self.revoked:
            await asyncio.sleep(self.recheck_every_s)
            allowed = await _can_see(self.user, self.run_id) and \
                await _session_alive(self.session_key)
            if not allowed:
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

    async def run_events(self, message: dict) -> None:
        for event in message["events"]:
            if self.revoked:
                return
            await self.send_json(event)
