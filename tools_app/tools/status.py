"""`status`: which providers are configured, how many models, throttle use and uptime."""

import json
import time
from typing import Any

from tools_app.providers import all_providers
from tools_app.throttle import get_throttle
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema

STARTED_AT = time.monotonic()


def provider_status() -> list[dict[str, Any]]:
    return [
        {"provider": provider.name, "configured": provider.configured, "models": len(provider.models())}
        for provider in all_providers()
    ]


class StatusTool(Tool):
    name = "status"
    description = "Show configured providers, model counts, throttle use and server uptime."
    input_schema = object_schema({})

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        info = {
            "providers": provider_status(),
            "throttle": await get_throttle().snapshot(),
            "uptime_s": round(time.monotonic() - STARTED_AT, 1),
        }
        return ToolResult(json.dumps(info), info)
