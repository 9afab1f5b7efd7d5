"""`provider_capabilities`: what each configured provider and model can do here."""

from __future__ import annotations

import json
from typing import Any

from tools_app.providers import catalogue_models, configured_providers
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


class ProviderCapabilitiesTool(Tool):
    name = "provider_capabilities"
    kind = "simple"
    profile = "full"
    description = "What each configured provider and model supports: context, vision, web search, files, tools."
    input_schema = object_schema({})

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        providers = [
            {
                "provider": provider.name,
                "files_api_max_bytes": provider.max_file_bytes,
                "function_calling": provider.name == "kimi",
                "web_search_tool": provider.name == "glm",
                "models": [spec.as_dict() for spec in await catalogue_models(provider)],
            }
            for provider in configured_providers()
        ]
        return ToolResult(json.dumps({"providers": providers}, indent=1), {"providers": len(providers)})
