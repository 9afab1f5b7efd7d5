"""Provider-call slots: one global slot, then one of the call's provider, always given back.

This is the in-process backend for the embedded default (one daphne process). The
waits are measured and handed to the caller for `latency_metrics`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from django.conf import settings


class Overloaded(Exception):
    """No slot became free within EXAI_QUEUE_TIMEOUT_S."""


@dataclass
class SlotWaits:
    global_ms: float = 0.0
    provider_ms: float = 0.0


class _Pool:
    """A counting semaphore that also reports how many hold and wait for it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.waiting = 0
        self._semaphore = asyncio.Semaphore(limit)

    async def acquire(self, timeout_s: float) -> float:
        started = time.perf_counter()
        self.waiting += 1
        try:
            async with asyncio.timeout(timeout_s):
                await self._semaphore.acquire()
        except TimeoutError:
            raise Overloaded from None
        finally:
            self.waiting -= 1
        self.in_use += 1
        return (time.perf_counter() - started) * 1000

    def release(self) -> None:
        self.in_use -= 1
        self._semaphore.release()

    def snapshot(self) -> dict[str, int]:
        return {"in_use": self.in_use, "waiting": self.waiting, "limit": self.limit}


def _provider_limit(provider: str) -> int:
    limits = {
        "kimi": settings.EXAI_KIMI_MAX_CONCURRENCY,
        "glm": settings.EXAI_GLM_MAX_CONCURRENCY,
        "local": settings.EXAI_LOCAL_MAX_CONCURRENCY,
    }
    return limits.get(provider, settings.EXAI_MAX_CONCURRENCY)


class Throttle:
    def __init__(self) -> None:
        self.global_pool = _Pool(settings.EXAI_MAX_CONCURRENCY)
        self.provider_pools: dict[str, _Pool] = {}

    def _provider_pool(self, provider: str) -> _Pool:
        pool = self.provider_pools.get(provider)
        if pool is None:
            pool = self.provider_pools[provider] = _Pool(_provider_limit(provider))
        return pool

    @asynccontextmanager
    async def slot(self, provider: str) -> AsyncIterator[SlotWaits]:
        """Hold a global slot, then a slot of `provider`, for exactly the body's duration."""
        waits = SlotWaits()
        timeout_s = settings.EXAI_QUEUE_TIMEOUT_S
        deadline = time.perf_counter() + timeout_s
        waits.global_ms = await self.global_pool.acquire(timeout_s)
        try:
            pool = self._provider_pool(provider)
            waits.provider_ms = await pool.acquire(max(0.0, deadline - time.perf_counter()))
            try:
                yield waits
            finally:
                pool.release()
        finally:
            self.global_pool.release()

    def snapshot(self) -> dict[str, object]:
        return {
            "global": self.global_pool.snapshot(),
            "providers": {name: pool.snapshot() for name, pool in self.provider_pools.items()},
        }


# asyncio primitives belong to one event loop; a process normally has one, tests have many.
_throttles: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Throttle] = weakref.WeakKeyDictionary()


def get_throttle() -> Throttle:
    loop = asyncio.get_running_loop()
    throttle = _throttles.get(loop)
    if throttle is None:
        throttle = _throttles[loop] = Throttle()
    return throttle
