"""The run page's WebSocket: one group per run, joined only by members of its workspace."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from pipelines_ui.runs.broadcast import group_name
from pipelines_ui.runs.models import Run


@database_sync_to_async
def _can_see(user, run_id: int) -> bool:
    if not user or not user.is_authenticated:
        return False
    return Run.objects.filter(pk=run_id, workspace__memberships__user=user).exists()


class RunConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        if not await _can_see(self.scope.get("user"), self.run_id):
            await self.close(code=4404)
            return
        self.group = group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_event(self, message: dict) -> None:
        await self.send_json(message["event"])
