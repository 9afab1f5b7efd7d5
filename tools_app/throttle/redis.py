"""The Redis backend: exact limits for a whole cluster, fair, and impossible to leak.

Each pool is three sorted sets under the pool's key:
  holders  lease -> expiry (ms, Redis clock)   who holds a slot, until when
  queue    lease -> ticket                     who waits, first come first served
  alive    lease -> expiry                     waiters' liveness, refreshed while they wait
Every change is one Lua script, atomic, using the Redis server's clock. A lease that
is not renewed expires by itself, so a process killed with -9 returns its capacity
within EXAI_LEASE_TTL_S; a waiter that died is dropped from the queue within
WAITER_TTL_MS. A release publishes the pool's name; one listener per process wakes
the one waiter of that pool with the lowest ticket, i.e. the next in line here. A bounded fallback poll covers
lost messages and expiries, more often near the head of the queue than far back, so a
deep queue costs Redis little. Leases are renewed from a thread with a connection of
its own (`LeaseKeeper`), so an overloaded event loop can never let them lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from django.conf import settings

from exai_site.outages import now_or_later
from tools_app.circuit import ADMIT_BODY, RECORD_BODY, CircuitBreaker, Passage, RedisCircuitBreaker
from tools_app.redis_client import LUA_NOW_MS, channel_messages, get_redis, redis_key
from tools_app.throttle.base import (
    Overloaded,
    Pool,
    SlotWaits,
    Throttle,
    call_pools,
    global_pool,
    honour_cancellation,
    provider_pools,
)

logger = logging.getLogger(__name__)

WAITER_TTL_MS = 3000
POLL_NEAR_S = 0.25  # waiters that could be next
POLL_FAR_S = 1.0  # waiters further back (well inside WAITER_TTL_MS)
TOMBSTONE_TTL_MS = 60_000  # far longer than any command can be in flight


# KEYS: holders, queue, alive, ticket, tombstone   ARGV: lease, lease ttl ms, limit, waiter ttl ms, key ttl s
ACQUIRE = (
    LUA_NOW_MS
    + """
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {0, 0, 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for i = 1, #dead do
  redis.call('ZREM', KEYS[2], dead[i])
  redis.call('ZREM', KEYS[3], dead[i])
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {1, 0, 0}
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
local acquired = 0
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
if free > 0 and rank < free then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  acquired = 1
end
local ticket = redis.call('ZSCORE', KEYS[2], ARGV[1]) or 0
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return {acquired, rank, ticket}
"""
)

# The fast path of a provider call: all of its pools at once, in one round trip, but only
# when none of them has anyone queued (so it can never overtake a waiter).
# KEYS: (holders, queue, alive) per pool, then the tombstone
# ARGV: lease ttl ms, key ttl s, then (lease, limit) per pool
ACQUIRE_ALL_BODY = """
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return 0 end
local pools = (#KEYS - 1) / 3
for p = 0, pools - 1 do
  local holders, queue, alive = KEYS[p * 3 + 1], KEYS[p * 3 + 2], KEYS[p * 3 + 3]
  redis.call('ZREMRANGEBYSCORE', holders, '-inf', now)
  local dead = redis.call('ZRANGEBYSCORE', alive, '-inf', now)
  for i = 1, #dead do
    redis.call('ZREM', queue, dead[i])
    redis.call('ZREM', alive, dead[i])
  end
  if redis.call('ZCARD', queue) > 0 or redis.call('ZCARD', holders) >= tonumber(ARGV[p * 2 + 4]) then
    return 0
  end
end
for p = 0, pools - 1 do
  local holders = KEYS[p * 3 + 1]
  redis.call('ZADD', holders, now + tonumber(ARGV[1]), ARGV[p * 2 + 3])
  redis.call('EXPIRE', holders, ARGV[2])
end
return 1
"""
ACQUIRE_ALL = LUA_NOW_MS + ACQUIRE_ALL_BODY

# Give back slots of any number of pools. A waiter interrupted mid-acquire also leaves a
# tombstone: its acquire script may still be on its way on another connection, and will
# honour it instead of granting a slot to nobody.
# KEYS: (holders, queue, alive) per pool, the channel, the tombstone
# ARGV: tombstone ttl ms (0: none), then (lease, pool name) per pool
RELEASE = """
if tonumber(ARGV[1]) > 0 then redis.call('SET', KEYS[#KEYS], 1, 'PX', ARGV[1]) end
local pools = (#KEYS - 2) / 3
for p = 0, pools - 1 do
  local held = redis.call('ZREM', KEYS[p * 3 + 1], ARGV[p * 2 + 2])
  redis.call('ZREM', KEYS[p * 3 + 2], ARGV[p * 2 + 2])
  redis.call('ZREM', KEYS[p * 3 + 3], ARGV[p * 2 + 2])
  if held == 1 then redis.call('PUBLISH', KEYS[#KEYS - 1], ARGV[p * 2 + 3]) end
end
return 1
"""

# A provider request's way in and out, one round trip each, for the circuit breaker and the
# slots together (tools_app/circuit.py's scripts run inside these as functions).
# In: KEYS breaker state, then ACQUIRE_ALL's; ARGV probe ttl ms, then ACQUIRE_ALL's.
#     -> {admitted, probe, retry_in_ms, granted}: a refusal takes no slot.
GATE_IN = (
    LUA_NOW_MS
    + f"""
local function admit(KEYS, ARGV) {ADMIT_BODY} end
local function acquire_all(KEYS, ARGV) {ACQUIRE_ALL_BODY} end
local passage = admit({{KEYS[1]}}, {{ARGV[1]}})
if passage[1] == 0 then return {{0, 0, passage[3], 0}} end
return {{1, passage[2], 0, acquire_all({{unpack(KEYS, 2)}}, {{unpack(ARGV, 2)}})}}
"""
)
# Out: KEYS RELEASE's, then the breaker's three (none: nothing to count), then a key to mark
#      ARGV the number of RELEASE's keys and args, of the breaker's keys, the mark's ttl ms
#      (0: none), RELEASE's args, then RECORD's.
GATE_OUT = (
    LUA_NOW_MS
    + f"""
local function release(KEYS, ARGV) {RELEASE} end
local function record(KEYS, ARGV) {RECORD_BODY} end
local nkeys, nargs, nrecord = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mark_ttl = tonumber(ARGV[4])
release({{unpack(KEYS, 1, nkeys)}}, {{unpack(ARGV, 5, nargs + 4)}})
if nrecord > 0 then record({{unpack(KEYS, nkeys + 1, nkeys + nrecord)}}, {{unpack(ARGV, nargs + 5)}}) end
if mark_ttl > 0 then redis.call('SET', KEYS[#KEYS], 1, 'PX', mark_ttl) end
return 1
"""
)

# KEYS: holders...   ARGV: lease ttl ms, key ttl s, lease...  (KEYS[i] pairs with ARGV[i + 2])
RENEW = (
    LUA_NOW_MS
    + """
local lost = {}
for i = 1, #KEYS do
  local lease = ARGV[i + 2]
  if redis.call('ZSCORE', KEYS[i], lease) then
    redis.call('ZADD', KEYS[i], now + tonumber(ARGV[1]), lease)
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  else
    table.insert(lost, lease)
  end
end
return lost
"""
)

# KEYS: holders, alive
COUNT = (
    LUA_NOW_MS
    + """
return {redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'), redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')}
"""
)


def _lease_ttl_ms() -> int:
    return int(settings.EXAI_LEASE_TTL_S * 1000)


def _key_ttl_s() -> int:
    # Keys of pools nobody touches vanish; live ones are refreshed on every acquire and renewal.
    return max(60, int(settings.EXAI_LEASE_TTL_S * 4))


def _tombstone(lease: str) -> str:
    return redis_key("sem", "abandoned", lease)


class _Keys:
    def __init__(self, pool: Pool) -> None:
        base = redis_key("sem", pool.name)
        self.holders = f"{base}:holders"
        self.queue = f"{base}:queue"
        self.alive = f"{base}:alive"
        self.ticket = f"{base}:ticket"


class LeaseKeeper:
    """Renews every lease this process holds, a few times per TTL, from a thread of its own.

    A thread with its own connection, not a task on the event loop: when the loop is
    overloaded (exactly when limits matter most) a task would run late and let leases
    expire under calls that are still running. The thread gets its turn every few
    milliseconds whatever the loop is doing.
    """

    def __init__(self) -> None:
        self._held: dict[str, str] = {}  # lease -> holders key
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, lease: str, holders_key: str) -> None:
        with self._lock:
            self._held[lease] = holders_key
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="exai-lease-keeper", daemon=True)
                self._thread.start()

    def discard(self, lease: str) -> None:
        with self._lock:
            self._held.pop(lease, None)

    def _run(self) -> None:
        import redis as sync_redis

        # Its own connection, replaced on the next renewal when a Redis restart broke it.
        client = sync_redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
        renew = client.register_script(RENEW)
        while True:
            # At least once a second: cheap (one script for all leases) and quick to follow a TTL change.
            time.sleep(min(settings.EXAI_LEASE_TTL_S / 3, 1.0))
            with self._lock:
                held = list(self._held.items())
            if not held:
                continue
            try:
                lost = renew(
                    keys=[holders for _, holders in held],
                    args=[_lease_ttl_ms(), _key_ttl_s(), *[lease for lease, _ in held]],
                )
            except Exception:
                logger.warning("could not renew %d slot leases", len(held), exc_info=True)
                continue
            with self._lock:
                # A lease released since the snapshot is gone on purpose, not lost.
                lost = [lease for lease in lost if lease.decode() in self._held]
            for lease in lost:
                logger.error("slot lease %s expired while its call still ran", lease.decode())


_keeper = LeaseKeeper()


class RedisThrottle(Throttle):
    """One instance per event loop (redis.asyncio is loop-bound)."""

    def __init__(self) -> None:
        self.redis = get_redis()
        self.channel = redis_key("sem", "released")
        self._acquire = self.redis.register_script(ACQUIRE)
        self._release = self.redis.register_script(RELEASE)
        self._count = self.redis.register_script(COUNT)
        self._acquire_all = self.redis.register_script(ACQUIRE_ALL)
        self._gate_in = self.redis.register_script(GATE_IN)
        self._gate_out = self.redis.register_script(GATE_OUT)
        # pool -> this process's waiters, each with its ticket (its place in the Redis queue)
        self._waiters: dict[str, dict[asyncio.Future[None], float]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    async def acquire(self, pool: Pool, deadline: float) -> str:
        keys = _Keys(pool)
        lease = f"{self._prefix}-{uuid.uuid4().hex[:12]}"
        started = time.perf_counter()
        self._ensure_listener()
        loop = asyncio.get_running_loop()
        waiters = self._waiters.setdefault(pool.name, {})
        # Registered before the first try, so a release between a try and the wait is not missed.
        wakeup: asyncio.Future[None] = loop.create_future()
        waiters[wakeup] = math.inf
        try:
            while True:
                granted, rank, ticket = await self._acquire(
                    keys=[keys.holders, keys.queue, keys.alive, keys.ticket, _tombstone(lease)],
                    args=[lease, _lease_ttl_ms(), pool.limit, WAITER_TTL_MS, _key_ttl_s()],
                )
                honour_cancellation()
                if granted:
                    _keeper.add(lease, keys.holders)
                    return lease
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise Overloaded(pool.label, round(time.perf_counter() - started, 3))
                if wakeup.done():  # woken, but a waiter of another process was ahead
                    waiters.pop(wakeup, None)
                    wakeup = loop.create_future()
                waiters[wakeup] = float(ticket)
                poll = POLL_NEAR_S if int(rank) < pool.limit else POLL_FAR_S
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(poll, remaining)):
                        await asyncio.shield(wakeup)
                honour_cancellation()
        except BaseException:
            # Cancelled, timed out or failed while queued (or just as the slot was granted):
            # leave the queue and give back anything granted, so nothing is held for nobody.
            await self._give_back([pool], [keys], [lease], tombstone=lease)
            raise
        finally:
            waiters.pop(wakeup, None)
            if not waiters:
                self._waiters.pop(pool.name, None)

    @asynccontextmanager
    async def slots(self, *, provider: str, user_id: Any) -> AsyncIterator[SlotWaits]:
        """All the call's slots in one round trip when nobody waits for any of them; else in turn, fairly."""
        async with self._fast_slots(provider=provider, user_id=user_id, passage=None, breaker=None) as waits:
            yield waits

    @asynccontextmanager
    async def gated_slots(
        self, *, provider: str, user_id: Any, passage: Passage, breaker: CircuitBreaker
    ) -> AsyncIterator[SlotWaits]:
        """`slots` behind the circuit breaker in one round trip each way when nobody waits: the
        way in admits the request (a refusal raises holding nothing) and takes every slot, the way
        out gives them back and counts the finished request's outcome."""
        if not isinstance(breaker, RedisCircuitBreaker):  # a breaker of this process alone
            async with super().gated_slots(provider=provider, user_id=user_id, passage=passage, breaker=breaker) as w:
                yield w
            return
        async with self._fast_slots(provider=provider, user_id=user_id, passage=passage, breaker=breaker) as waits:
            yield waits

    @asynccontextmanager
    async def _fast_slots(
        self, *, provider: str, user_id: Any, passage: Passage | None, breaker: RedisCircuitBreaker | None
    ) -> AsyncIterator[SlotWaits]:
        """One script in (with the breaker's admission when given a `passage`) and one out, never
        overtaking a waiter: when someone waits for a slot, the request queues fairly, pool by
        pool, and its outcome is counted on its own."""
        pools = call_pools(provider=provider, user_id=user_id)
        keys = [_Keys(pool) for pool in pools]
        base = f"{self._prefix}-{uuid.uuid4().hex[:12]}"
        leases = [f"{base}-{index}" for index in range(len(pools))]
        slot_keys = [*[key for k in keys for key in (k.holders, k.queue, k.alive)], _tombstone(base)]
        slot_args = [
            _lease_ttl_ms(),
            _key_ttl_s(),
            *[v for lease, pool in zip(leases, pools, strict=True) for v in (lease, pool.limit)],
        ]
        try:
            if passage is not None and breaker is not None:
                *admission, granted = await self._gate_in(
                    keys=[*breaker.admit_keys(passage), *slot_keys], args=[*breaker.admit_args(passage), *slot_args]
                )
            else:
                granted = await self._acquire_all(keys=slot_keys, args=slot_args)
            honour_cancellation()
        except BaseException:
            # The script may still be on its way: give back, and leave a tombstone it will honour.
            await self._give_back(pools, keys, leases, tombstone=base)
            raise
        if passage is not None and breaker is not None:
            breaker.admitted(passage, admission)  # a refusal raises here, holding nothing
        if not granted:
            try:
                async with super().slots(provider=provider, user_id=user_id) as waits:
                    yield waits
            finally:
                if passage is not None and breaker is not None:
                    await breaker.leave(passage)
            return
        for lease, key in zip(leases, keys, strict=True):
            _keeper.add(lease, key.holders)
        try:
            yield SlotWaits()
        finally:
            await self._give_back(pools, keys, leases, passage=passage, breaker=breaker)

    async def release(self, pool: Pool, handle: Any) -> None:
        await self._give_back([pool], [_Keys(pool)], [handle])

    async def _give_back(
        self,
        pools: list[Pool],
        keys: list[_Keys],
        leases: list[str],
        *,
        tombstone: str | None = None,
        passage: Passage | None = None,
        breaker: RedisCircuitBreaker | None = None,
    ) -> None:
        """Give back the leases (one per pool); with `tombstone`, also refuse their late acquire;
        with a finished `passage`, count its outcome in the breaker in the same round trip."""
        for lease in leases:
            _keeper.discard(lease)
        release_keys = [
            *[key for k in keys for key in (k.holders, k.queue, k.alive)],
            self.channel,
            _tombstone(tombstone or leases[0]),
        ]
        release_args = [
            TOMBSTONE_TTL_MS if tombstone else 0,
            *[v for lease, pool in zip(leases, pools, strict=True) for v in (lease, pool.name)],
        ]

        def release() -> Any:
            if passage is None or breaker is None:
                return self._release(keys=release_keys, args=release_args)
            counted = passage.finished
            record_keys = breaker.record_keys(passage) if counted else []
            mark = passage.mark if counted and passage.error is None else None
            passage.marked = mark is not None
            return self._gate_out(
                keys=[*release_keys, *record_keys, *([mark] if mark else [])],
                args=[
                    len(release_keys),
                    len(release_args),
                    len(record_keys),
                    passage.mark_ttl_ms if mark else 0,
                    *release_args,
                    *(breaker.record_args(passage) if counted else []),
                ],
            )

        try:
            # With Redis away, given back when it returns; the leases expire by themselves
            # within EXAI_LEASE_TTL_S anyway, so capacity comes back either way.
            await now_or_later(f"give back {len(leases)} slots", release)
        except Exception:
            logger.warning("could not release %s slots; they expire by themselves", len(leases), exc_info=True)

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        try:
            async for data in channel_messages(self.channel, self.redis):
                self._wake_one(data.decode() if isinstance(data, bytes) else str(data))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("throttle wake-up listener stopped; waiters poll meanwhile", exc_info=True)

    def _wake_one(self, pool_name: str) -> None:
        """One slot came free: wake this process's next waiter of that pool (lowest ticket)."""
        waiters = self._waiters.get(pool_name)
        pending = [(ticket, future) for future, ticket in (waiters or {}).items() if not future.done()]
        if pending:
            min(pending, key=lambda item: item[0])[1].set_result(None)

    async def snapshot(self) -> dict[str, Any]:
        async def counts(pool: Pool) -> dict[str, int]:
            keys = _Keys(pool)
            in_use, waiting = await self._count(keys=[keys.holders, keys.alive])
            return {"in_use": int(in_use), "waiting": int(waiting), "limit": pool.limit}

        pools = provider_pools()
        results = await asyncio.gather(counts(global_pool()), *(counts(pool) for pool in pools))
        return {
            "backend": "redis",
            "global": results[0],
            "providers": {
                pool.name.removeprefix("provider:"): result for pool, result in zip(pools, results[1:], strict=True)
            },
        }
