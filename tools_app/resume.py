"""Calls that outlive their socket: a dropped client reconnects and gets the same call back.

A call on `/ws` runs apart from the socket that asked for it. When the socket drops, the
call keeps running for EXAI_RESUME_GRACE_S; the same user resending the same
`request_id` on the same session (the reconnecting client does this) attaches to it and
hears the rest, or gets its stored result once it has finished: the provider is asked
once. Unclaimed after the grace, the call is cancelled (provider request aborted, slots
freed). An explicit `cancel` stops it at once.

With REDIS_URL the same holds across server processes. The process that runs a call holds
a claim on its key (renewed while it runs, so a killed process lets go within seconds); a
process that receives the resent `request_id` while another holds the claim waits for the
result to appear in the shared idempotency store, marking the call as watched so that the
owner does not cancel it at the end of its grace. A cancel sent to the watching process is
passed on through Redis and stops the call within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from exai_site.outages import now_or_later
from tools_app.idempotency import idempotency_store
from tools_app.ratelimit import GCRA_BODY, counted_ms, user_call_rate
from tools_app.redis_client import LUA_NOW_MS, get_redis, redis_key, redis_script
from tools_app.services import failure_outcome, interrupted_outcome
from tools_app.throttle.base import honour_cancellation

logger = logging.getLogger(__name__)

Frame = dict[str, Any]
Listener = Callable[[Frame], Awaitable[None]]
Emit = Callable[[Frame], Awaitable[None]]
Runner = Callable[[Emit], Awaitable[dict[str, Any]]]
Outcome = dict[str, Any]

# Outcomes worth replaying to a retry: not those a retry should run again.
_NOT_REPLAYED = ("internal", "overloaded", "shutting_down", "cancelled")
CLAIM_TTL_MS = 15_000  # a claim whose process died lapses this soon
CLAIM_RENEW_S = 5.0
WATCH_TTL_MS = 5_000  # a watcher on another process refreshes this well within its TTL
CANCEL_TTL_MS = 60_000
GRACE_TICK_S = 1.0  # how often a detached call looks for a remote cancel or watcher


class RunningCall:
    """One call in flight in this process, and the listener (a socket) it reports to, if any."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.listener: Listener | None = None
        self.result: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.grace: asyncio.Task[None] | None = None

    async def emit(self, frame: Frame) -> None:
        if self.listener is not None:
            await self.listener(frame)

    def attach(self, listener: Listener) -> None:
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        self.listener = listener

    def detach(self, listener: Listener, registry: CallRegistry) -> None:
        """The socket behind `listener` is gone: keep running, for a while, for its return."""
        if self.listener is not listener or self.result.done():
            return
        self.listener = None
        self.grace = asyncio.ensure_future(registry.grace(self))


class CallRegistry:
    """The calls in flight in this process, by idempotency key."""

    def __init__(self) -> None:
        self._running: dict[str, RunningCall] = {}
        self.claims = RedisClaims() if settings.REDIS_URL else None

    async def serve(self, key: str, listener: Listener, run: Runner, *, user_id: Any = None) -> Outcome:
        """The call's outcome: stored, joined while it runs (here or elsewhere), or run now.

        With Redis, the stored result is read, the claim taken and `user_id`'s call counted
        against their rate limit in one round trip (the call then skips its own count)."""
        store = idempotency_store()
        while True:
            running = self._running.get(key)
            if running is None and self.claims is not None:
                stored, claimed, waited_ms = await self.claims.result_or_claim(key, user_call_rate(user_id))
                if claimed and waited_ms is not None:
                    counted_ms.set(waited_ms)  # copied into the call's task as it starts
            else:
                stored, claimed = await store.get(key), self.claims is None
            honour_cancellation()  # a cancel that came with the reply must not start the call
            if stored is not None:  # (the claim script takes no claim when it finds a result)
                return stored
            if running is None and claimed:
                if _cancel_pending():  # the cancel came with the claim's reply: let the claim go
                    if self.claims is not None:
                        await self.claims.release(key)
                    raise asyncio.CancelledError
                running = self._start(key, run)
            if running is not None:
                running.attach(listener)
                try:
                    # Shielded: this socket going away detaches from the call, it does not cancel it.
                    return await asyncio.shield(running.result)
                finally:
                    running.detach(listener, self)
            assert self.claims is not None
            if (outcome := await self.claims.wait_elsewhere(key, store)) is not None:
                return outcome
            # The claim lapsed without a result (its process died): run it here.

    def cancel_here(self, key: str) -> bool:
        """Stop the call if it runs in this process (at once, no await); say whether it did."""
        running = self._running.get(key)
        if running is None or running.task is None:
            return False
        running.task.cancel()
        return True

    async def cancel_elsewhere(self, key: str) -> None:
        """Ask the process that runs the call (if any other does) to stop it, through Redis."""
        if self.claims is not None:
            await self.claims.request_cancel(key)

    def _start(self, key: str, run: Runner) -> RunningCall:
        running = self._running[key] = RunningCall(key)
        running.task = asyncio.ensure_future(self._run(running, run))
        running.task.add_done_callback(lambda task: self._never_started(running, task))
        return running

    def _never_started(self, running: RunningCall, task: asyncio.Task[None]) -> None:
        """A call cancelled before its first step never ran `_run`'s cleanup: do it here."""
        if not task.cancelled():
            return

        if self._running.get(running.key) is running:
            del self._running[running.key]
        if not running.result.done():
            running.result.set_result(dict(interrupted_outcome()))
        if self.claims is not None:
            release = asyncio.ensure_future(self.claims.release(running.key))
            release.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def _run(self, running: RunningCall, run: Runner) -> None:
        claims = self.claims
        keeper = asyncio.ensure_future(claims.keep(running.key)) if claims is not None else None
        outcome: Outcome | None = None
        released = False
        try:
            outcome = await run(running.emit)
            # The answer goes out now; storing it for a resend and letting the claim go follow. A
            # resend meanwhile joins this call (it stays registered until then), or, on another
            # process, waits for the claim's result.
            running.result.set_result(outcome)
            if outcome.get("error", {}).get("code") not in _NOT_REPLAYED:
                # A store that is down is written later. With Redis, the claim goes in the same trip.
                result = outcome
                keep = claims.store_and_release if claims is not None else idempotency_store().set
                if keeper is not None:
                    keeper.cancel()
                released = claims is not None
                await now_or_later(f"store the result of call {running.key}", lambda: keep(running.key, result))
        except asyncio.CancelledError:
            outcome = dict(interrupted_outcome())
        except Exception as exc:
            outcome = dict(failure_outcome(exc, "internal error; it has been logged", failed=f"call {running.key}"))
        finally:
            if self._running.get(running.key) is running:
                del self._running[running.key]
            if keeper is not None:
                keeper.cancel()
            if running.grace is not None:
                running.grace.cancel()
            if claims is not None and not released:
                with contextlib.suppress(Exception):
                    await claims.release(running.key)
            if not running.result.done():
                running.result.set_result(outcome or {"error": {"code": "internal", "message": "no outcome"}})

    async def grace(self, running: RunningCall) -> None:
        """Cancel a detached call unless its client comes back within EXAI_RESUME_GRACE_S."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + settings.EXAI_RESUME_GRACE_S
        while loop.time() < ends:
            await asyncio.sleep(min(GRACE_TICK_S, ends - loop.time()))
            if self.claims is None:
                continue
            try:
                if await self.claims.cancel_requested(running.key):
                    break
                if await self.claims.watched(running.key):
                    ends = loop.time() + settings.EXAI_RESUME_GRACE_S
            except Exception:
                logger.warning("could not check call %s in Redis", running.key, exc_info=True)
        if running.task is not None and running.listener is None:
            running.task.cancel()


class RedisClaims:
    """Which process runs a call, shared through Redis: claim, watch and cancel keys per call."""

    def __init__(self) -> None:
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @staticmethod
    def _key(kind: str, key: str) -> str:
        return redis_key("call", kind, key)

    async def result_or_claim(
        self, key: str, rate: tuple[str, list[float]] | None
    ) -> tuple[Outcome | None, bool, float | None]:
        """The call's stored result, or else whether this process now holds its claim and, with
        `rate` (the user's call count), how long the rate limit says to wait (ms; 0: go on)."""
        rate_key, rate_args = rate or (None, [])
        stored, claimed, waited_ms = await redis_script(_RESULT_OR_CLAIM)(
            keys=[redis_key(key), self._key("claim", key), *([rate_key] if rate_key else [])],
            args=[self.owner, CLAIM_TTL_MS, *rate_args],
        )
        counted = float(waited_ms) if rate_key and claimed else None
        return (json.loads(stored) if stored else None), bool(claimed), counted

    async def store_and_release(self, key: str, outcome: Outcome) -> None:
        """Store the call's result for a resend and let its claim go, in one round trip."""
        async with get_redis().pipeline(transaction=False) as pipe:
            pipe.set(redis_key(key), json.dumps(outcome), ex=settings.EXAI_IDEMPOTENCY_TTL_S)
            pipe.delete(self._key("claim", key), self._key("cancel", key))
            await pipe.execute()

    async def keep(self, key: str) -> None:
        """Renew the claim while the call runs; a process that dies lets it lapse."""
        while True:
            await asyncio.sleep(CLAIM_RENEW_S)
            with contextlib.suppress(Exception):
                await get_redis().pexpire(self._key("claim", key), CLAIM_TTL_MS)

    async def release(self, key: str) -> None:
        redis = get_redis()
        await redis.delete(self._key("claim", key), self._key("cancel", key))

    async def wait_elsewhere(self, key: str, store: Any) -> Outcome | None:
        """Wait for the call another process runs; None when its claim lapses with no result."""
        redis, delay = get_redis(), 0.05
        while True:
            await redis.set(self._key("watch", key), 1, px=WATCH_TTL_MS)
            if (outcome := await store.get(key)) is not None:
                return outcome
            if not await redis.exists(self._key("claim", key)):
                return await store.get(key)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def request_cancel(self, key: str) -> None:
        await get_redis().set(self._key("cancel", key), 1, px=CANCEL_TTL_MS)

    async def cancel_requested(self, key: str) -> bool:
        return bool(await get_redis().exists(self._key("cancel", key)))

    async def watched(self, key: str) -> bool:
        return bool(await get_redis().exists(self._key("watch", key)))


# KEYS: the stored result, the claim[, the user's call count]
# ARGV: owner, claim ttl ms[, GCRA_BODY's interval and tolerance]
# -> {result or nil, claimed, ms the rate limit says to wait}: a claimed call is counted.
_RESULT_OR_CLAIM = (
    LUA_NOW_MS
    + f"""
local function gcra(KEYS, ARGV) {GCRA_BODY} end
local stored = redis.call('GET', KEYS[1])
if stored then return {{stored, 0, 0}} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {{false, 0, 0}} end
if #KEYS < 3 then return {{false, 1, 0}} end
return {{false, 1, gcra({{KEYS[3]}}, {{ARGV[3], ARGV[4]}})}}
"""
)

_registries: dict[str, CallRegistry] = {}


def _cancel_pending() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def call_registry() -> CallRegistry:
    """This process's registry (one per Redis prefix, so tests and deployments stay apart)."""
    prefix = f"{settings.EXAI_REDIS_PREFIX}|{bool(settings.REDIS_URL)}"
    registry = _registries.get(prefix)
    if registry is None:
        registry = _registries[prefix] = CallRegistry()
    return registry
