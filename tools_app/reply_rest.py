"""The rest of a reply cut for length (tools_app/responses.py), kept for its caller until
`conversations` {"action": "rest"} takes it, for as long as a thread lives."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache

from exai_site.cache import owned_key
from exai_site.outages import now_or_later


def _rest_key(user_id: Any, thread_id: str) -> str:
    return owned_key(f"u{user_id}", f"{settings.EXAI_REDIS_PREFIX}:rest:{thread_id}")


async def store_rest(user_id: Any, thread_id: str, rest: str) -> None:
    timeout = int(settings.EXAI_CONVERSATION_TTL_HOURS * 3600)
    await now_or_later(
        "keep the rest of a long reply", lambda: cache.aset(_rest_key(user_id, thread_id), rest, timeout)
    )


async def take_rest(user_id: Any, thread_id: str) -> str | None:
    key = _rest_key(user_id, thread_id)
    rest = await cache.aget(key)
    if rest is not None:
        await cache.adelete(key)
    return rest
