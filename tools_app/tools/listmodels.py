"""`listmodels`: the models this server can reach, with their capabilities and the aliases."""

import json
from typing import Any

from tools_app.providers import all_providers, catalogue_models, model_aliases
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


class ListModelsTool(Tool):
    name = "listmodels"
    kind = "simple"
    profile = "lean"
    description = (
        "List the models each configured provider serves now (read from its live list), with context window, "
        "thinking, vision and pinned sampling, and what the aliases kimi, glm and auto mean."
    )
    input_schema = object_schema({})

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        providers = [
            {
                "provider": provider.name,
                "configured": provider.configured,
                "models": [spec.as_dict() for spec in await catalogue_models(provider)],
                **({"list_error": provider.catalogue.error} if provider.catalogue.error else {}),
                **({} if provider.configured else {"enable_with": provider.enable_hint}),
            }
            for provider in all_providers()
        ]
        payload = {"providers": providers, "aliases": model_aliases()}
        return ToolResult(json.dumps(payload, indent=1), {"providers": providers, "aliases": model_aliases()})
