"""`activity`: the caller's own recent calls, summed up per tool (from the latency samples)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Avg, Count, Q
from django.utils import timezone

from metrics_app.models import LatencySample
from metrics_app.recorder import buffer
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


def own_samples(user: Any) -> Any:
    """The caller's samples, the ones still buffered in this process included (written first)."""
    buffer.flush()
    return LatencySample.objects.filter(user_id=user.pk)


class ActivityTool(Tool):
    name = "activity"
    kind = "simple"
    profile = "full"
    description = "Your recent tool calls per tool: count, errors, mean latency (default: the last hour)."
    input_schema = object_schema({"minutes": {"type": "integer", "minimum": 1, "maximum": 10080}})

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        minutes = arguments.get("minutes", 60)

        def summary() -> list[dict[str, Any]]:
            since = timezone.now() - timedelta(minutes=minutes)
            rows = (
                own_samples(ctx.user)
                .filter(created__gte=since)
                .values("tool")
                .annotate(
                    calls=Count("id"),
                    errors=Count("id", filter=~Q(status=LatencySample.OK)),
                    mean_ms=Avg("total_latency_ms"),
                )
                .order_by("-calls", "tool")
            )
            return [{**row, "mean_ms": round(row["mean_ms"], 1)} for row in rows]

        tools = await database_sync_to_async(summary)()
        payload = {"minutes": minutes, "calls": sum(t["calls"] for t in tools), "tools": tools}
        return ToolResult(json.dumps(payload, indent=1), {"calls": payload["calls"]})
