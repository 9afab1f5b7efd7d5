"""One redis.asyncio client per event loop, for the parts that talk to Redis directly."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def get_redis() -> Any:
    """The loop's client for REDIS_URL (redis.asyncio connections belong to the loop that made them)."""
    import redis.asyncio as redis

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = redis.from_url(settings.REDIS_URL, health_check_interval=30)
    return client


def redis_key(*parts: object) -> str:
    """A key under EXAI_REDIS_PREFIX, so several deployments (or test runs) can share one Redis."""
    return ":".join([settings.EXAI_REDIS_PREFIX, *map(str, parts)])
