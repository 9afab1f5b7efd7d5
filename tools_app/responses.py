"""What a calling assistant can take back: long replies cut into parts, identical calls cached.

A reply over EXAI_MAX_RESPONSE_TOKENS is cut at the last paragraph (else line, else
sentence) boundary under the limit; the rest waits in Django's cache (Redis when
configured) under the caller and the reply's continuation_id, and `conversations`
{"action": "rest"} hands it out part by part. Identical cacheable calls (same user, tool
and arguments, temperature 0, no thread) within EXAI_CACHE_TTL_S are answered from the
cache, with `cache_hit: true`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache

from exai_site.cache import owned_key
from exai_site.outages import now_or_later, unreachable_service
from tools_app.context_window import estimate_tokens
from tools_app.reply_rest import store_rest
from tools_app.tools.base import Tool, ToolResult

_BOUNDARIES = ("\n\n", "\n", ". ", " ")


def split_at_boundary(text: str, max_tokens: int) -> tuple[str, str]:
    """(head, rest): the longest clean head under `max_tokens`, and everything after it."""
    if estimate_tokens(text) <= max_tokens:
        return text, ""
    # The estimate is near-linear in length: scale to a character budget, then back off to a boundary.
    budget = len(text) * max_tokens // estimate_tokens(text)
    while budget > 0 and estimate_tokens(text[:budget]) > max_tokens:
        budget = budget * 9 // 10
    for boundary in _BOUNDARIES:
        cut = text.rfind(boundary, budget // 2, budget)
        if cut > 0:
            return text[: cut + len(boundary)].rstrip(), text[cut + len(boundary) :].lstrip()
    return text[:budget], text[budget:]


async def cut_long_reply(result: ToolResult, user_id: Any) -> ToolResult:
    """The reply as the assistant can take it: whole, or its first part and how to get the rest."""
    limit = settings.EXAI_MAX_RESPONSE_TOKENS
    head, rest = split_at_boundary(result.text, limit)
    if not rest:
        return result
    thread_id = result.metadata.get("continuation_id") or uuid.uuid4().hex
    await store_rest(user_id, thread_id, rest)
    note = (
        f"\n\n[Cut here to stay under {limit:,} tokens; about {estimate_tokens(rest):,} tokens remain. "
        f'For the rest call `conversations` with {{"action": "rest", "continuation_id": "{thread_id}"}}.]'
    )
    metadata = {**result.metadata, "continuation_id": thread_id, "truncated": True}
    return ToolResult(head + note, metadata)


def cache_key(tool: Tool, user_id: Any, arguments: dict[str, Any]) -> str | None:
    """The response-cache key of this call, or None when it must not be cached."""
    if not (tool.cacheable and settings.EXAI_CACHE_TTL_S):
        return None
    if arguments.get("use_cache") is False or arguments.get("temperature") != 0 or arguments.get("continuation_id"):
        return None
    canonical = json.dumps(
        [tool.name, user_id, {k: v for k, v in arguments.items() if k != "use_cache"}], sort_keys=True
    )
    return owned_key(
        f"u{user_id}", f"{settings.EXAI_REDIS_PREFIX}:reply:{hashlib.sha256(canonical.encode()).hexdigest()}"
    )


async def cached_reply(key: str | None) -> ToolResult | None:
    if key is None:
        return None
    try:
        hit = await cache.aget(key)
    except Exception as exc:
        if unreachable_service(exc) is None:
            raise
        return None  # the cache is away (Redis restarting): ask the model

    if hit is None:
        return None
    return ToolResult(hit["text"], {**hit["metadata"], "cache_hit": True})


async def remember_reply(key: str | None, result: ToolResult) -> None:
    if key is not None:
        value = {"text": result.text, "metadata": result.metadata}
        await now_or_later("cache a reply", lambda: cache.aset(key, value, timeout=settings.EXAI_CACHE_TTL_S))
