"""The live error feed (/ws/errors, staff only) and the background worker (channel exai.background)."""

from typing import Any

from channels.consumer import AsyncConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from errors_app.services import FEED_GROUP, error_investigate

CLOSE_FORBIDDEN = 4403


class ErrorFeedConsumer(AsyncJsonWebsocketConsumer):
    """Streams new and recurring errors as they are recorded."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.send_json({"op": "error", "error": {"code": "forbidden", "message": "staff only"}})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(FEED_GROUP, self.channel_name)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(FEED_GROUP, self.channel_name)

    async def error_occurred(self, event: dict[str, Any]) -> None:
        await self.send_json({"op": "error_occurred", "event": event["event"], "error": event["error"]})


class BackgroundWorker(AsyncConsumer):
    """`manage.py runworker exai.background`: investigations queued by any server process."""

    async def error_investigate(self, message: dict[str, Any]) -> None:
        await error_investigate(error_id=message["error_id"])
