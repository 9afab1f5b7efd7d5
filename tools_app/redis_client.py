"""One redis.asyncio client per event loop, for the parts that talk to Redis directly."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

# Lua prologue for scripts that need the time: Redis's own clock, shared by every process.
LUA_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_COMMAND_TIMEOUT_S = 10.0

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def get_redis() -> Any:
    """The loop's client for REDIS_URL (redis.asyncio connections belong to the loop that made them)."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # A blocking pool: under a burst, callers wait for a free connection instead of failing
        # with "Too many connections", and the server never opens more than the pool's size.
        pool = redis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=settings.EXAI_REDIS_MAX_CONNECTIONS,
            timeout=settings.EXAI_REDIS_POOL_TIMEOUT_S,
            health_check_interval=30,
            # A Redis that went away (restart, failover) fails a command within seconds, never
            # hangs it; a connection left broken by a restart is replaced on the next try.
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_COMMAND_TIMEOUT_S,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[ConnectionError, TimeoutError],
        )
        client = _clients[loop] = redis.Redis(connection_pool=pool)
    return client


def redis_key(*parts: object) -> str:
    """A key under EXAI_REDIS_PREFIX, so several deployments (or test runs) can share one Redis."""
    return ":".join([settings.EXAI_REDIS_PREFIX, *map(str, parts)])


_scripts: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def redis_script(text: str) -> Any:
    """`text` registered once with this loop's client: EVALSHA, so the script crosses the wire once."""
    client = get_redis()
    scripts = _scripts.setdefault(client, {})
    script = scripts.get(text)
    if script is None:
        script = scripts[text] = client.register_script(text)
    return script


async def channel_messages(channel: str, client: Any = None, poll_s: float = 1.0) -> AsyncIterator[Any]:
    """The data of each message published to `channel`, as they come.

    redis-py's pubsub can swallow a cancellation that lands while it reads (the task then
    waits on forever); this loop reads with a timeout and checks `Task.cancelling()` after
    each read, so a cancelled listener stops within `poll_s` whatever redis-py did with it.
    """
    task = asyncio.current_task()
    async with (client or get_redis()).pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(channel)
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll_s)
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            if message is not None:
                yield message["data"]
