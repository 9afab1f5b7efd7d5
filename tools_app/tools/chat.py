"""`chat`: a conversation turn with a Kimi, GLM or local model, continuing a thread if asked."""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async

from tools_app.calls import reply_metadata
from tools_app.context_window import prompt_limit_check
from tools_app.conversations import conversation_open
from tools_app.providers import ResolvedModel
from tools_app.throttle import get_throttle
from tools_app.tools.base import (
    CONTINUATION_PROPERTY,
    MODEL_PROPERTY,
    TEMPERATURE_PROPERTY,
    THINKING_MODE_PROPERTY,
    USE_CACHE_PROPERTY,
    CallContext,
    Tool,
    ToolResult,
    object_schema,
    resolve_tool_model,
)
from tools_app.tools.files import FILE_IDS_SCHEMA, PromptFile, file_label, resolve_files
from tools_app.tools.messages import turn_messages
from tools_app.tools.vision import IMAGES_SCHEMA

SYSTEM_PROMPT = (
    "You are a senior engineer consulted by another AI coding assistant. Answer precisely and "
    "concisely, show code where it helps, and say plainly when you are unsure."
)


class ChatTool(Tool):
    name = "chat"
    profile = "lean"
    description = (
        "Ask a Kimi, GLM or local model for a second opinion, brainstorming or an explanation. "
        "Pass continuation_id from an earlier reply to continue that thread."
    )
    input_schema = object_schema(
        {
            "prompt": {"type": "string", "minLength": 1, "description": "Your question or request."},
            "model": MODEL_PROPERTY,
            "temperature": TEMPERATURE_PROPERTY,
            "system_prompt": {"type": "string", "description": "Replaces the default system prompt."},
            "continuation_id": CONTINUATION_PROPERTY,
            "images": IMAGES_SCHEMA,
            "files": FILE_IDS_SCHEMA,
            "use_websearch": {"type": "boolean", "description": "Let the model search the web (where it can)."},
            "use_cache": USE_CACHE_PROPERTY,
            "thinking_mode": THINKING_MODE_PROPERTY,
        },
        required=["prompt"],
    )

    cacheable = True

    async def resolve(self, ctx: CallContext, arguments: dict[str, Any], files: list[PromptFile]) -> ResolvedModel:
        """The model this call goes to; subclasses narrow or choose it."""
        return await resolve_tool_model(arguments.get("model"), vision=bool(arguments.get("images")), files=bool(files))

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        prompt_limit_check(arguments, "prompt")
        files = await resolve_files(ctx, arguments.get("files") or [])
        resolved = await self.resolve(ctx, arguments, files)

        continuation_id = arguments.get("continuation_id")
        if not continuation_id:
            return await self._turn(ctx, arguments, resolved, files, None)
        # Turns of one thread run one at a time, in order, each seeing the turns before it.
        async with get_throttle().conversation(continuation_id) as waited_ms:
            ctx.conversation_wait_ms += waited_ms
            return await self._turn(ctx, arguments, resolved, files, continuation_id)

    async def _turn(
        self,
        ctx: CallContext,
        arguments: dict[str, Any],
        resolved: ResolvedModel,
        files: list[PromptFile],
        continuation_id: str | None,
    ) -> ToolResult:
        prompt: str = arguments["prompt"]
        conversation, history = (
            await database_sync_to_async(conversation_open)(user=ctx.user, continuation_id=continuation_id)
            if continuation_id
            else (None, [])  # a new thread: nothing to read
        )
        ctx.keeps_turn_of = conversation.id if conversation is not None else uuid.uuid4()
        messages, dropped = await turn_messages(
            ctx,
            resolved,
            system=arguments.get("system_prompt") or SYSTEM_PROMPT,
            request=prompt,
            files=files,
            history=history,
            images=arguments.get("images"),
        )
        await ctx.progress(f"asking {resolved.spec.name}")
        web_search = bool(arguments.get("use_websearch"))
        reply = await ctx.call_provider(
            resolved,
            messages,
            temperature=arguments.get("temperature"),
            thinking_mode=arguments.get("thinking_mode"),
            web_search=web_search,
        )
        conversation = await ctx.record_turn(
            conversation=conversation,
            tool=self.name,
            prompt=prompt,
            resolved=resolved,
            reply=reply,
            ttft_ms=reply.ttft_ms,
            processing_ms=round(ctx.processing_ms, 3),
        )
        return ToolResult(
            reply.text,
            {
                "provider": resolved.provider.name,
                "model": reply.model,
                "continuation_id": str(conversation.id),
                "remaining_turns": conversation.remaining_turns,
                **reply_metadata(reply),
                "files": [file_label(source) for source in files],
                "history_turns_dropped": dropped,
                "web_search": web_search and resolved.spec.web_search,
            },
        )
