"""`listmodels`: the models this server can reach, with their capabilities and the aliases."""

import json
from typing import Any

from tools_app.providers import all_providers, model_aliases
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


class ListModelsTool(Tool):
    name = "listmodels"
    kind = "simple"
    profile = "lean"
    description = "List the models of each configured provider with context window and capabilities."
    input_schema = object_schema({})

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        providers = [
            {
                "provider": provider.name,
                "configured": provider.configured,
                "models": [spec.as_dict() for spec in provider.models()] if provider.configured else [],
                **({} if provider.configured else {"enable_with": provider.enable_hint}),
            }
            for provider in all_providers()
        ]
        payload = {"providers": providers, "aliases": model_aliases()}
        return ToolResult(json.dumps(payload, indent=1), {"providers": providers, "aliases": model_aliases()})
