"""`toolcall_log_tail`: the caller's last N calls with status and latency."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async

from metrics_app.tools.activity import own_samples
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema

FIELDS = ("created", "tool", "status", "provider", "model", "total_latency_ms", "request_id")


class ToolCallLogTailTool(Tool):
    name = "toolcall_log_tail"
    kind = "simple"
    profile = "full"
    description = "Your last N tool calls (newest first) with status, model and latency."
    input_schema = object_schema({"n": {"type": "integer", "minimum": 1, "maximum": 200}})

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        def tail() -> list[dict[str, Any]]:
            rows = own_samples(ctx.user).order_by("-created", "-id").values(*FIELDS)[: arguments.get("n", 20)]
            return [{**row, "created": row["created"].isoformat()} for row in rows]

        calls = await database_sync_to_async(tail)()
        return ToolResult(json.dumps({"calls": calls}, indent=1), {"count": len(calls)})
