"""`kimi_chat_with_tools`: one function-calling turn with Kimi; the assistant runs the functions."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, cast

from tools_app.calls import check_sampling
from tools_app.context_window import prompt_limit_check
from tools_app.errors import ToolError
from tools_app.providers.openai_compatible import OpenAICompatibleProvider
from tools_app.tools.base import (
    MODEL_PROPERTY,
    TEMPERATURE_PROPERTY,
    CallContext,
    Tool,
    ToolResult,
    object_schema,
    resolve_tool_model,
)


class KimiChatWithToolsTool(Tool):
    name = "kimi_chat_with_tools"
    profile = "full"
    description = (
        "Function calling with Kimi, passed through: send messages and OpenAI-style tools; get back the reply "
        "or the tool_calls to run, then send the assistant message back (with its reasoning_content, if any) "
        "and the results as role=tool messages."
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
                    "properties": {
                        "type": {"const": "function"},
                        "function": {
                            "type": "object",
                            "required": ["name"],
                            # What the OpenAI-compatible APIs accept as a function name.
                            "properties": {
                                "name": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$"},
                                "description": {"type": "string"},
                                "parameters": {"type": "object"},
                            },
                        },
                    },
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
        resolved = await resolve_tool_model(arguments.get("model") or "kimi")
        if resolved.provider.name != "kimi":
            raise ToolError("invalid_arguments", f"{resolved.spec.name} is not a Kimi model.")
        spec, provider = resolved.spec, cast(OpenAICompatibleProvider, resolved.provider)
        check_sampling(spec, arguments.get("temperature"))
        if spec.thinking and arguments.get("tool_choice") == "required":
            raise ToolError(
                "invalid_arguments",
                f"{spec.name} thinks before it answers and then refuses tool_choice 'required'; use 'auto'.",
            )
        await ctx.progress(f"asking {spec.name} (function calling)")

        def turn() -> Awaitable[dict[str, Any]]:
            return provider.chat_with_tools(
                spec=spec,
                messages=arguments["messages"],
                tools=arguments["tools"],
                tool_choice=arguments.get("tool_choice"),
                temperature=arguments.get("temperature"),
            )

        answer = await ctx.provider_request(provider, turn, model=spec.name, operation="function calling")
        ctx.tokens_in += answer["tokens_in"]
        ctx.tokens_out += answer["tokens_out"]
        message = answer["message"]
        payload = {
            "finish_reason": answer["finish_reason"],
            "content": message.get("content") or "",
            "tool_calls": message.get("tool_calls") or [],
        }
        if message.get("reasoning_content"):
            # A thinking model wants it back on this assistant message in the next turn's messages.
            payload["reasoning_content"] = message["reasoning_content"]
        return ToolResult(
            json.dumps(payload, indent=1),
            {"provider": "kimi", "model": answer["model"], "finish_reason": answer["finish_reason"]},
        )
