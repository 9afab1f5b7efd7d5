"""`/ws/dashboard` (staff only): the dashboard's live updates."""

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from metrics_app.dashboard import GROUP, dashboard_snapshot, publisher

CLOSE_FORBIDDEN = 4403


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.send_json({"op": "error", "error": {"code": "forbidden", "message": "staff only"}})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.watching = True
        await self.channel_layer.group_add(GROUP, self.channel_name)
        publisher.watch()
        await self.send_json({"op": "snapshot", "snapshot": await dashboard_snapshot()})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "watching", False):
            publisher.unwatch()
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def dashboard_snapshot(self, event: dict[str, Any]) -> None:
        await self.send_json({"op": "snapshot", "snapshot": event["snapshot"]})
