"""`conversations`: list, show or delete your threads — for when a continuation_id got lost."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Substr
from django.utils import timezone

from tools_app.conversations import conversation_owned
from tools_app.errors import ToolError
from tools_app.models import Conversation, Message
from tools_app.reply_rest import take_rest
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema
from tools_app.turns import flush_turns

EXCERPT = 160


class ConversationsTool(Tool):
    name = "conversations"
    kind = "simple"
    profile = "lean"
    description = (
        "List your conversation threads (newest first), show or delete one, or get the rest of a reply "
        "that was cut short."
    )
    input_schema = object_schema(
        {
            "action": {"type": "string", "enum": ["list", "show", "delete", "rest"]},
            "continuation_id": {"type": "string", "description": "The thread, for show and delete."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100},
        },
        ["action"],
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        action = arguments["action"]
        # The turns this process answered a moment ago are listed too (tools_app/turns.py).
        await flush_turns()
        if action == "list":
            payload = await database_sync_to_async(thread_list)(user=ctx.user, limit=arguments.get("limit", 20))
            return ToolResult(json.dumps(payload, indent=1), {"count": len(payload["threads"])})
        thread_id = arguments.get("continuation_id")
        if not thread_id:
            raise ToolError("invalid_arguments", f"`{action}` needs the thread's continuation_id.")
        if action == "rest":
            rest = await take_rest(ctx.slot_owner, thread_id)
            if rest is None:
                raise ToolError("invalid_arguments", f"nothing is left of a reply for {thread_id} (or it expired).")
            # Handed back as a reply: cut again (and kept) if it is still too long.
            return ToolResult(rest, {"continuation_id": thread_id})
        conversation = await database_sync_to_async(conversation_owned)(user=ctx.user, continuation_id=thread_id)
        if action == "delete":
            await conversation.adelete()
            payload = {"deleted": thread_id}
        else:
            payload = await database_sync_to_async(thread_show)(
                conversation=conversation, limit=arguments.get("limit", 50)
            )
        return ToolResult(json.dumps(payload, indent=1), {"continuation_id": thread_id})


def thread_list(*, user: Any, limit: int) -> dict[str, Any]:
    now = timezone.now()
    threads = []
    first_prompt = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.USER).order_by("id")
    listed = Conversation.objects.filter(owner=user).annotate(
        first_prompt=Substr(Subquery(first_prompt.values("content")[:1]), 1, EXCERPT)
    )
    for conversation in listed.order_by("-updated")[:limit]:
        threads.append(
            {
                "continuation_id": str(conversation.id),
                "tool": conversation.tool,
                "turns": conversation.turn_count,
                "remaining_turns": conversation.remaining_turns,
                "updated": conversation.updated.isoformat(),
                "expired": conversation.expires_at <= now,
                "first_prompt": conversation.first_prompt or "",
            }
        )
    return {"threads": threads}


def thread_show(*, conversation: Conversation, limit: int) -> dict[str, Any]:
    messages = list(conversation.messages.order_by("-id").values("role", "tool", "model", "content", "created")[:limit])
    messages.reverse()
    return {
        "continuation_id": str(conversation.id),
        "tool": conversation.tool,
        "turns": conversation.turn_count,
        "remaining_turns": conversation.remaining_turns,
        "expires_at": conversation.expires_at.isoformat(),
        "messages": [{**m, "created": m["created"].isoformat()} for m in messages],
    }
