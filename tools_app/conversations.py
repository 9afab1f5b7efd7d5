"""Conversation memory: load a thread for a new turn, and record the turn once it is answered."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tools_app.errors import ToolError
from tools_app.models import Conversation, Message
from tools_app.providers.base import ChatMessage


def conversation_open(
    *, user: AbstractBaseUser, continuation_id: str | None
) -> tuple[Conversation | None, list[ChatMessage]]:
    """Return the caller's thread and its earlier turns, or (None, []) for a new thread."""
    if not continuation_id:
        return None, []
    try:
        key = uuid.UUID(continuation_id)
    except ValueError:
        raise ToolError("invalid_arguments", f"continuation_id {continuation_id!r} is not a valid id.") from None
    conversation = Conversation.objects.filter(pk=key).first()
    if conversation is None:
        raise ToolError(
            "invalid_arguments",
            f"continuation_id {continuation_id} is unknown or was deleted; start a new thread without it.",
        )
    if conversation.owner_id != user.pk:
        raise ToolError("forbidden", f"continuation_id {continuation_id} belongs to another user.")
    if conversation.expires_at <= timezone.now():
        raise ToolError(
            "invalid_arguments",
            f"continuation_id {continuation_id} expired after {settings.EXAI_CONVERSATION_TTL_HOURS:g} hours "
            "without a turn; start a new thread without it.",
        )
    if conversation.remaining_turns <= 0:
        raise ToolError(
            "invalid_arguments",
            f"continuation_id {continuation_id} reached its limit of {settings.EXAI_MAX_CONVERSATION_TURNS} "
            "turns; start a new thread without it.",
        )
    history: list[ChatMessage] = [
        {"role": role, "content": content}
        for role, content in conversation.messages.filter(
            role__in=[Message.Role.USER, Message.Role.ASSISTANT]
        ).values_list("role", "content")
    ]
    return conversation, history


def conversation_record_turn(
    *,
    user: AbstractBaseUser,
    conversation: Conversation | None,
    tool: str,
    prompt: str,
    reply: str,
    provider: str,
    model: str,
    tokens_in: int,
    tokens_out: int,
    metadata: dict[str, Any],
) -> Conversation:
    """Append one answered turn, creating the thread on its first turn; refresh its expiry."""
    with transaction.atomic():
        if conversation is None:
            conversation = Conversation.objects.create(
                owner=user,  # type: ignore[misc]  # AUTH_USER_MODEL, whatever class it is
                tool=tool,
                turn_count=1,
                expires_at=Conversation.fresh_expiry(),
            )
        else:
            Conversation.objects.filter(pk=conversation.pk).update(
                turn_count=F("turn_count") + 1, expires_at=Conversation.fresh_expiry(), updated=timezone.now()
            )
            conversation.turn_count += 1
        common = {"conversation": conversation, "tool": tool, "provider": provider, "model": model}
        Message.objects.bulk_create(
            [
                Message(role=Message.Role.USER, content=prompt, tokens=tokens_in, **common),
                Message(role=Message.Role.ASSISTANT, content=reply, tokens=tokens_out, metadata=metadata, **common),
            ]
        )
    return conversation
