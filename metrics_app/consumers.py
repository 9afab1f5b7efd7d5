"""`/ws/dashboard` (staff only): the dashboard's live updates."""

from typing import Any

from exai_site.staff import StaffFeedConsumer
from metrics_app.dashboard import GROUP, dashboard_snapshot, publisher


class DashboardConsumer(StaffFeedConsumer):
    group = GROUP

    async def joined_group(self) -> None:
        publisher.watch()
        await self.send_json({"op": "snapshot", "snapshot": await dashboard_snapshot()})

    async def left_group(self) -> None:
        publisher.unwatch()

    async def dashboard_snapshot(self, event: dict[str, Any]) -> None:
        await self.send_json({"op": "snapshot", "snapshot": event["snapshot"]})
