"""The in-process backend for the embedded default: exact for one server process."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from tools_app.throttle.base import Overloaded, Pool, Throttle, global_pool, provider_pools


class _Slots:
    """A strictly first-come-first-served counting semaphore that reports use and waiters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    def grant(self) -> None:
        while self.waiters and self.in_use < self.limit:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.in_use += 1
                waiter.set_result(None)

    async def acquire(self, pool: Pool, deadline: float) -> None:
        if self.in_use < self.limit and not self.waiters:
            self.in_use += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                await waiter
        except TimeoutError:
            raise Overloaded(pool.label, 0) from None
        except BaseException:
            # Granted while being cancelled: give that slot straight back.
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def release(self) -> None:
        self.in_use -= 1
        self.grant()

    @property
    def idle(self) -> bool:
        return self.in_use == 0 and not self.waiters

    def snapshot(self) -> dict[str, int]:
        return {"in_use": self.in_use, "waiting": len(self.waiters), "limit": self.limit}


class LocalThrottle(Throttle):
    def __init__(self) -> None:
        self._pools: dict[str, _Slots] = {}

    def _slots(self, pool: Pool) -> _Slots:
        slots = self._pools.get(pool.name)
        if slots is None:
            slots = self._pools[pool.name] = _Slots(pool.limit)
        elif slots.limit != pool.limit:
            # A provider's limit moves (lowered after a 429, recovering): waiters follow at once.
            slots.limit = pool.limit
            slots.grant()
        return slots

    async def acquire(self, pool: Pool, deadline: float) -> Any:
        started = time.perf_counter()
        try:
            await self._slots(pool).acquire(pool, deadline)
        except Overloaded:
            raise Overloaded(pool.label, round(time.perf_counter() - started, 3)) from None
        return None

    async def release(self, pool: Pool, handle: Any) -> None:
        slots = self._pools[pool.name]
        slots.release()
        # Per-user and per-thread pools come and go; forget them when nobody holds or waits.
        if slots.idle and not pool.name.startswith(("global", "provider:")):
            del self._pools[pool.name]

    async def snapshot(self) -> dict[str, Any]:
        return {
            "backend": "local",
            "global": self._slots(global_pool()).snapshot(),
            "providers": {
                pool.name.removeprefix("provider:"): self._slots(pool).snapshot() for pool in provider_pools()
            },
        }
