"""`glm_web_search`: Z.ai's web search endpoint, with engine, recency and domain filters."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, cast

from tools_app.providers import configured_provider
from tools_app.providers.glm import GlmProvider
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


class GlmWebSearchTool(Tool):
    name = "glm_web_search"
    profile = "full"
    description = "Search the web through Z.ai (GLM): titles, links and excerpts, filtered by recency or domain."
    input_schema = object_schema(
        {
            "query": {"type": "string", "minLength": 1, "maxLength": 500},
            "engine": {"type": "string", "enum": ["search_std", "search_pro", "search_pro_sogou", "search_pro_quark"]},
            "count": {"type": "integer", "minimum": 1, "maximum": 50},
            "domain": {"type": "string", "description": "Only results from this domain."},
            "recency": {"type": "string", "enum": ["oneDay", "oneWeek", "oneMonth", "oneYear", "noLimit"]},
        },
        ["query"],
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        glm = cast(GlmProvider, configured_provider("glm"))  # or provider_unavailable, saying how to configure it
        await ctx.progress("searching the web through Z.ai")

        def search() -> Awaitable[list[dict[str, Any]]]:
            return glm.web_search(
                query=arguments["query"],
                engine=arguments.get("engine", "search_std"),
                count=arguments.get("count", 5),
                domain=arguments.get("domain"),
                recency=arguments.get("recency"),
            )

        results = await ctx.provider_request(glm, search, model="web_search", operation="web search")
        keep = ("title", "link", "content", "media", "publish_date")
        listed = [{key: item.get(key) for key in keep if item.get(key)} for item in results]
        return ToolResult(
            json.dumps({"query": arguments["query"], "results": listed}, indent=1),
            {"provider": "glm", "model": None, "results": len(listed)},
        )
