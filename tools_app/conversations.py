"""Conversation memory: load a thread for a new turn, and record the turn once it is answered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tools_app.errors import ToolError
from tools_app.models import Conversation, Message
from tools_app.providers.types import ChatMessage
from tools_app.thread_resources import thread_changed


def conversation_owned(*, user: AbstractBaseUser, continuation_id: str) -> Conversation:
    """The caller's thread with that id, expired or not; a clear ToolError for any other id."""
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
    return conversation


def conversation_open(
    *, user: AbstractBaseUser, continuation_id: str | None, history: bool = True, exclude_run: str | None = None
) -> tuple[Conversation | None, list[ChatMessage]]:
    """Return the caller's thread and its earlier turns, or (None, []) for a new thread.

    `history=False` only checks the thread; `exclude_run` leaves out one workflow run's steps.
    """
    if not continuation_id:
        return None, []
    conversation = conversation_owned(user=user, continuation_id=continuation_id)
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
    if not history:
        return conversation, []
    messages = conversation.messages.filter(role__in=[Message.Role.USER, Message.Role.ASSISTANT])
    # (In Python: a JSON-key `exclude` would also drop the rows that have no such key.)
    turns: list[ChatMessage] = [
        {"role": role, "content": content}
        for role, content, metadata in messages.values_list("role", "content", "metadata")
        if exclude_run is None or (metadata or {}).get("run") != exclude_run
    ]
    return conversation, turns


def conversation_record_turn(*, thread_id: uuid.UUID, again: bool = False, **turn: Any) -> None:
    """Append one answered turn (`conversations_record_turns`' fields) in a transaction of its own,
    creating the thread as `thread_id` on its first turn. Written `again` after an outage, a
    first turn that did commit is not doubled."""
    with transaction.atomic():
        if again and turn["conversation"] is None and Conversation.objects.filter(pk=thread_id).exists():
            return
        conversations_record_turns([{"thread_id": thread_id, **turn}])


def conversations_record_turns(turns: list[dict[str, Any]]) -> None:
    """Append many answered turns at once — each `user`, `conversation` (None: a new thread, made
    as `thread_id`), `tool`, `prompt`, `reply`, `provider`, `model`, `tokens_in`, `tokens_out`,
    `metadata` — refreshing each thread's expiry: one INSERT for the new threads, one for all
    the messages, one UPDATE per continued thread. All or nothing (tools_app/turns.py falls back
    to `conversation_record_turn`, one turn at a time)."""
    created = [turn for turn in turns if turn["conversation"] is None]
    continued = [turn for turn in turns if turn["conversation"] is not None]
    with transaction.atomic():
        threads = Conversation.objects.bulk_create(
            [
                Conversation(
                    id=turn["thread_id"],
                    owner=turn["user"],
                    tool=turn["tool"],
                    turn_count=1,
                    expires_at=Conversation.fresh_expiry(),
                )
                for turn in created
            ]
        )
        for turn, thread in zip(created, threads, strict=True):
            turn["conversation"] = thread
        for turn in continued:
            Conversation.objects.filter(pk=turn["conversation"].pk).update(
                turn_count=F("turn_count") + 1, expires_at=Conversation.fresh_expiry(), updated=timezone.now()
            )
        messages = []
        for turn in turns:
            common = {
                "conversation": turn["conversation"],
                "tool": turn["tool"],
                "provider": turn["provider"],
                "model": turn["model"],
            }
            messages += [
                Message(role=Message.Role.USER, content=turn["prompt"], tokens=turn["tokens_in"], **common),
                Message(
                    role=Message.Role.ASSISTANT,
                    content=turn["reply"],
                    tokens=turn["tokens_out"],
                    metadata=turn["metadata"],
                    **common,
                ),
            ]
        Message.objects.bulk_create(messages)
        new_threads = {thread.pk for thread in threads}
        for turn in turns:
            thread = turn["conversation"]
            thread_changed(thread.owner_id, thread.pk, "created" if thread.pk in new_threads else "updated")


def conversation_record_step(
    *, user: AbstractBaseUser, conversation: Conversation | None, tool: str, step: dict[str, Any], content: str
) -> tuple[Conversation, list[dict[str, Any]]]:
    """Keep one workflow step in the thread (no provider call, so not a turn); return the thread and
    the steps of its run so far, in step order, each with its run id.

    Step 1 starts a new run of the tool; a later step continues the thread's latest run
    of it. `backtrack_from_step` first drops that step and every later one of the run.
    """
    run_is_new_thread = conversation is None
    with transaction.atomic():
        if conversation is None:
            conversation = Conversation.objects.create(
                owner=user,  # type: ignore[misc]  # AUTH_USER_MODEL, whatever class it is
                tool=tool,
                expires_at=Conversation.fresh_expiry(),
            )
            run = None
        else:
            Conversation.objects.filter(pk=conversation.pk).update(
                expires_at=Conversation.fresh_expiry(), updated=timezone.now()
            )
            run = (
                conversation.messages.filter(metadata__workflow=tool)
                .order_by("-id")
                .values_list("metadata__run", flat=True)
                .first()
            )
        if (step["step_number"] == 1 and "backtrack_from_step" not in step) or run is None:
            run = uuid.uuid4().hex
        if "backtrack_from_step" in step:
            conversation.messages.filter(
                metadata__run=run, metadata__step_number__gte=step["backtrack_from_step"]
            ).delete()
        # A step sent again (a retry) replaces the one before it.
        conversation.messages.filter(metadata__run=run, metadata__step_number=step["step_number"]).delete()
        if conversation.messages.filter(metadata__has_key="workflow").count() >= settings.EXAI_MAX_THREAD_STEPS:
            raise ToolError(
                "invalid_arguments",
                f"this thread holds {settings.EXAI_MAX_THREAD_STEPS} workflow steps, its limit; start a new "
                "thread (omit continuation_id) or go back with backtrack_from_step.",
            )
        Message.objects.create(
            conversation=conversation,
            role=Message.Role.USER,
            content=content,
            tool=tool,
            metadata={"workflow": tool, "run": run, "step_number": step["step_number"], "step": step},
        )
        thread_changed(conversation.owner_id, conversation.pk, "created" if run_is_new_thread else "updated")
        steps = [
            {**metadata["step"], "run": run}
            for metadata in conversation.messages.filter(metadata__run=run).values_list("metadata", flat=True)
        ]
    return conversation, sorted(steps, key=lambda recorded: recorded["step_number"])


@dataclass(frozen=True)
class Purged:
    threads: int
    messages: int


def conversations_purge_expired(*, dry_run: bool = False) -> Purged:
    """Delete the threads past their expiry, with their turns and workflow steps (file uploads stay the user's)."""
    expired = Conversation.objects.filter(expires_at__lte=timezone.now())
    if dry_run:
        return Purged(expired.count(), Message.objects.filter(conversation__in=expired).count())
    with transaction.atomic():
        _, deleted = expired.delete()
    return Purged(deleted.get("tools_app.Conversation", 0), deleted.get("tools_app.Message", 0))
