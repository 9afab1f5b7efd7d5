"""`version`: the server's version and the protocol revisions it speaks."""

import json
import platform
from typing import Any

import django

from tools_app.mcp_protocol import SUPPORTED_VERSIONS, server_version
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


class VersionTool(Tool):
    name = "version"
    kind = "simple"
    profile = "lean"
    description = "Show the EXAI server version and the MCP revisions it serves."
    input_schema = object_schema({})

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        info = {
            "server": "exai",
            "version": server_version(),
            "mcp_protocol_versions": list(SUPPORTED_VERSIONS),
            "python": platform.python_version(),
            "django": django.get_version(),
        }
        return ToolResult(json.dumps(info), info)
