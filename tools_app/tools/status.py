"""`status`: which providers are configured, throttle and circuit state, and uptime."""

import json
import time
from typing import Any

from tools_app.health import health_snapshot
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema

STARTED_AT = time.monotonic()


class StatusTool(Tool):
    name = "status"
    kind = "simple"
    profile = "lean"
    description = "Show configured providers, throttle use, circuit breakers and server uptime."
    input_schema = object_schema({})

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        info = {**await health_snapshot(), "uptime_s": round(time.monotonic() - STARTED_AT, 1)}
        return ToolResult(json.dumps(info), info)
