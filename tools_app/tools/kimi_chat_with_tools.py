"""`kimi_chat_with_tools`: one function-calling turn with Kimi; the assistant runs the functions."""

from __future__ import annotations

import json
from typing import Any

from tools_app.errors import ToolError
from tools_app.tools.base import (
    MODEL_PROPERTY,
    TEMPERATURE_PROPERTY,
    CallContext,
    Tool,
    ToolResult,
    object_schema,
    resolve_tool_model,
)
from tools_app.tools.context import prompt_limit_check


class KimiChatWithToolsTool(Tool):
    name = "kimi_chat_with_tools"
    profile = "full"
    description = (
        "Function calling with Kimi, passed through: send messages and OpenAI-style tools; get back the reply "
        "or the tool_calls to run, then send their results as role=tool messages."
    )
    input_schema = object_schema(
        {
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"role": {"type": "string", "enum": ["system", "user", "assistant", "tool"]}},
                    "required": ["role"],
                },
            },
            "tools": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"type": {"const": "function"}, "function": {"type": "object", "required": ["name"]}},
                    "required": ["type", "function"],
                },
            },
            "tool_choice": {"anyOf": [{"type": "string", "enum": ["auto", "none", "required"]}, {"type": "object"}]},
            "model": {**MODEL_PROPERTY, "description": "A Kimi model (default: kimi)."},
            "temperature": TEMPERATURE_PROPERTY,
        },
        ["messages", "tools"],
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        text = {"messages": "".join(str(message.get("content") or "") for message in arguments["messages"])}
        prompt_limit_check(text, "messages")
        resolved = resolve_tool_model(arguments.get("model") or "kimi")
        if resolved.provider.name != "kimi":
            raise ToolError("invalid_arguments", f"{resolved.spec.name} is not a Kimi model.")
        provider: Any = resolved.provider
        ctx.provider, ctx.model = provider.name, resolved.spec.name
        await ctx.progress(f"asking {resolved.spec.name} (function calling)")
        async with ctx.provider_work(provider.name):
            answer = await provider.chat_with_tools(
                model=resolved.spec.name,
                messages=arguments["messages"],
                tools=arguments["tools"],
                tool_choice=arguments.get("tool_choice"),
                temperature=arguments.get("temperature"),
            )
        ctx.tokens_in += answer["tokens_in"]
        ctx.tokens_out += answer["tokens_out"]
        message = answer["message"]
        payload = {
            "finish_reason": answer["finish_reason"],
            "content": message.get("content") or "",
            "tool_calls": message.get("tool_calls") or [],
        }
        return ToolResult(
            json.dumps(payload, indent=1),
            {"provider": "kimi", "model": answer["model"], "finish_reason": answer["finish_reason"]},
        )
