"""Remember each finished call's result by (user, session, request_id), so a retry replays it.

Keys are xxhash digests (short, fixed size). The in-process store is bounded and
expires entries; with REDIS_URL the results live in Redis so a client that
reconnects to another server process still gets its answer.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

import xxhash
from django.conf import settings

from tools_app.redis_client import get_redis, redis_key

_MAX_LOCAL_ENTRIES = 10_000


def idempotency_key(user_id: Any, session_id: str, request_id: str) -> str:
    return "idem:" + xxhash.xxh3_128_hexdigest(f"{user_id}\x00{session_id}\x00{request_id}".encode())


class _LocalStore:
    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    async def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        return value

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self._entries[key] = (time.monotonic() + settings.EXAI_IDEMPOTENCY_TTL_S, value)
        self._entries.move_to_end(key)
        while len(self._entries) > _MAX_LOCAL_ENTRIES:
            self._entries.popitem(last=False)


class _RedisStore:
    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await get_redis().get(redis_key(key))
        return json.loads(raw) if raw else None

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await get_redis().set(redis_key(key), json.dumps(value), ex=settings.EXAI_IDEMPOTENCY_TTL_S)


_store: _LocalStore | _RedisStore | None = None


def idempotency_store() -> _LocalStore | _RedisStore:
    global _store
    if _store is None:
        _store = _RedisStore() if settings.REDIS_URL else _LocalStore()
    return _store
