"""The caller's conversation threads as MCP resources: `exai://threads/{thread_id}`.

Reading one gives the thread as Markdown: each message with its role, tool and model, in
order (workflow steps included). A thread that appears, gets a turn or is deleted is announced
to subscribers (tools_app/mcp_resources.py) once its transaction commits.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Substr
from django.db.models.signals import post_delete
from django.dispatch import receiver

from tools_app.mcp_resources import ResourceKind, ids_starting_with, register_resource_kind, resource_changed
from tools_app.models import Conversation, Message

NAME_CHARS = 60
# The newest messages a read returns; older ones are summarised by count.
READ_MESSAGES = 200


def _first_prompts() -> Subquery:
    first = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.USER).order_by("id")
    return Subquery(first.values("content")[:1])


def _list(user: Any, offset: int, limit: int) -> list[dict[str, Any]]:
    threads = (
        Conversation.objects.filter(owner=user)
        .annotate(first_prompt=Substr(_first_prompts(), 1, NAME_CHARS))
        .order_by("-updated", "pk")[offset : offset + limit]
    )
    return [
        {
            "uri": THREADS.uri(thread.id),
            "name": f"{thread.tool}: {' '.join((thread.first_prompt or '(no prompt yet)').split())}",
            "title": f"{thread.tool} thread {str(thread.id)[:8]} ({thread.turn_count} turns)",
            "description": f"A {thread.tool} thread, last updated {thread.updated:%Y-%m-%d %H:%M} UTC; "
            f"pass {thread.id} as continuation_id to continue it.",
            "mimeType": "text/markdown",
            "annotations": {"lastModified": thread.updated.isoformat()},
        }
        for thread in threads
    ]


def _read(user: Any, ident: str) -> dict[str, Any] | None:
    try:
        key = uuid.UUID(ident)
    except ValueError:
        return None
    thread = Conversation.objects.filter(pk=key, owner=user).first()
    if thread is None:
        return None
    total = thread.messages.count()
    messages = list(
        thread.messages.order_by("-id").values("role", "tool", "model", "content", "created")[:READ_MESSAGES]
    )
    messages.reverse()
    lines = [
        f"# {thread.tool} thread {thread.id}",
        "",
        f"{thread.turn_count} turns, {thread.remaining_turns} left; expires {thread.expires_at:%Y-%m-%d %H:%M} UTC. "
        f"Continue it with continuation_id `{thread.id}`.",
    ]
    if total > len(messages):
        lines += ["", f"({total - len(messages)} earlier messages are not shown.)"]
    for message in messages:
        by = f"{message['role']} · {message['tool']}" + (f" · {message['model']}" if message["model"] else "")
        lines += ["", f"## {by} · {message['created']:%Y-%m-%d %H:%M:%S} UTC", "", message["content"]]
    return {"mimeType": "text/markdown", "text": "\n".join(lines) + "\n"}


def _ids(user: Any, prefix: str, limit: int) -> list[str]:
    return ids_starting_with(Conversation.objects.filter(owner=user).order_by("-updated"), prefix, limit)


THREADS = ResourceKind(
    kind="threads",
    variable="thread_id",
    title="Conversation thread",
    description="One of your conversation threads, as Markdown (its id is a continuation_id).",
    mime_type="text/markdown",
    list_owned=_list,
    read_owned=_read,
    ids_owned=_ids,
)


def thread_changed(owner_id: Any, thread_id: Any, change: str = "updated") -> None:
    """Announce a thread's change once the current transaction (if any) commits."""
    uri = THREADS.uri(thread_id)
    transaction.on_commit(lambda: resource_changed(owner_id, uri, change))


@receiver(post_delete, sender=Conversation)
def _thread_deleted(sender: type[Conversation], instance: Conversation, **kwargs: Any) -> None:
    thread_changed(instance.owner_id, instance.pk, "deleted")


def register() -> None:
    register_resource_kind(THREADS)
