"""The live error feed (/ws/errors, staff only) and the background worker (channel exai.background)."""

from typing import Any

from channels.consumer import AsyncConsumer

from errors_app.services import FEED_GROUP, error_investigate
from exai_site.staff import StaffFeedConsumer


class ErrorFeedConsumer(StaffFeedConsumer):
    """Streams new and recurring errors as they are recorded."""

    group = FEED_GROUP

    async def error_occurred(self, event: dict[str, Any]) -> None:
        await self.send_json({"op": "error_occurred", "event": event["event"], "error": event["error"]})


class BackgroundWorker(AsyncConsumer):
    """`manage.py runworker exai.background`: investigations queued by any server process."""

    async def error_investigate(self, message: dict[str, Any]) -> None:
        await error_investigate(error_id=message["error_id"])
