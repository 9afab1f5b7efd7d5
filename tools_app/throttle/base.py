"""The throttle's one interface: fair slots, always given back, with measured waits."""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from tools_app.circuit import CircuitBreaker, Passage
from tools_app.providers import configured_providers
from tools_app.throttle.adaptive import configured_provider_limit, effective_limit


def honour_cancellation() -> None:
    """Raise if this task has a cancellation pending that an await swallowed.

    On Python 3.11 a cancellation that arrives just as a wake-up, a timeout or a Redis
    reply does can be lost inside shield/timeout or the client library; the task would
    then go on to take slots and call a provider for a call nobody wants any more (seen
    under load). `Task.cancelling()` still counts the request, so check it after the
    awaits that matter.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Overloaded(Exception):
    """No slot became free within EXAI_QUEUE_TIMEOUT_S."""

    def __init__(self, pool: str, waited_s: float) -> None:
        super().__init__(f"no {pool} slot within {waited_s:g}s")
        self.pool = pool
        self.waited_s = waited_s


@dataclass(frozen=True)
class Pool:
    """A named capacity: `global`, `provider:kimi`, `user:7`, `thread:<uuid>`."""

    name: str
    limit: int

    @property
    def label(self) -> str:
        kind, _, rest = self.name.partition(":")
        if kind == "user" and ":" in rest:
            return f"your share of {rest.partition(':')[2]}"
        return {"global": "global", "provider": f"{rest} provider", "user": "per-user", "thread": "conversation"}.get(
            kind, self.name
        )


@dataclass
class SlotWaits:
    user_ms: float = 0.0
    global_ms: float = 0.0
    provider_ms: float = 0.0


def provider_limit(provider: str) -> int:
    """The provider's slots now: fewer for a while after it answered 429 (throttle/adaptive.py)."""
    return effective_limit(provider, configured_provider_limit(provider))


def global_pool() -> Pool:
    return Pool("global", settings.EXAI_MAX_CONCURRENCY)


def provider_pool(provider: str) -> Pool:
    return Pool(f"provider:{provider}", provider_limit(provider))


def user_share(provider: str) -> int:
    """How many of the provider's slots one user may hold: the rest stay free for everyone else."""
    return max(1, int(provider_limit(provider) * settings.EXAI_USER_PROVIDER_SHARE))


def call_pools(*, provider: str, user_id: Any) -> list[Pool]:
    """The slots one provider call holds, in the order they are taken."""
    return [
        Pool(f"user:{user_id}", settings.EXAI_USER_MAX_CONCURRENCY),
        Pool(f"user:{user_id}:{provider}", user_share(provider)),
        global_pool(),
        provider_pool(provider),
    ]


def provider_pools() -> list[Pool]:
    return [provider_pool(provider.name) for provider in configured_providers()]


class Throttle(abc.ABC):
    """Backends implement acquire/release of one slot of one pool; the order lives here."""

    @abc.abstractmethod
    async def acquire(self, pool: Pool, deadline: float) -> Any:
        """Wait (fairly, first come first served) for a slot until `deadline` (perf_counter);
        return a handle for `release`, or raise Overloaded."""

    @abc.abstractmethod
    async def release(self, pool: Pool, handle: Any) -> None:
        """Give the slot back. Must be safe to call for a handle whose acquire was interrupted."""

    @abc.abstractmethod
    async def snapshot(self) -> dict[str, Any]:
        """In use, waiting and limit of the global and provider pools."""

    @asynccontextmanager
    async def hold(self, pool: Pool, deadline: float) -> AsyncIterator[float]:
        """Hold one slot of `pool` for the body; yield how long the wait took in ms."""
        started = time.perf_counter()
        handle = await self.acquire(pool, deadline)
        try:
            yield (time.perf_counter() - started) * 1000
        finally:
            await self.release(pool, handle)

    @asynccontextmanager
    async def slots(self, *, provider: str, user_id: Any) -> AsyncIterator[SlotWaits]:
        """Hold the caller's user slot and share of `provider`, then a global slot, then one of `provider`.

        A call whose cancellation an await swallowed on the way never gets into the body: no
        provider request is ever made for a call nobody wants any more.
        """
        waits = SlotWaits()
        deadline = time.perf_counter() + settings.EXAI_QUEUE_TIMEOUT_S
        user, share, everyone, provider_slots = call_pools(provider=provider, user_id=user_id)
        async with (
            self.hold(user, deadline) as user_ms,
            self.hold(share, deadline) as share_ms,
            self.hold(everyone, deadline) as waits.global_ms,
            self.hold(provider_slots, deadline) as waits.provider_ms,
        ):
            waits.user_ms = user_ms + share_ms
            honour_cancellation()
            yield waits

    @asynccontextmanager
    async def gated_slots(
        self, *, provider: str, user_id: Any, passage: Passage, breaker: CircuitBreaker
    ) -> AsyncIterator[SlotWaits]:
        """`slots` behind the provider's circuit breaker: admitted first (an open circuit raises
        `provider_unavailable` holding nothing), the finished request counted after the slots
        are given back. The Redis backend does both in its own round trips."""
        await breaker.enter(passage)
        try:
            async with self.slots(provider=provider, user_id=user_id) as waits:
                yield waits
        finally:
            await breaker.leave(passage)

    @asynccontextmanager
    async def conversation(self, thread_id: str) -> AsyncIterator[float]:
        """Run calls on one conversation thread one at a time, in arrival order."""
        deadline = time.perf_counter() + settings.EXAI_QUEUE_TIMEOUT_S
        async with self.hold(Pool(f"thread:{thread_id}", 1), deadline) as waited_ms:
            yield waited_ms
