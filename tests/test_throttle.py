"""The throttle backends: exact, fair, and nothing held once a call is over, however it ends."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers import wait_for
from tools_app.throttle import Overloaded, Pool, Throttle
from tools_app.throttle.local import LocalThrottle


@pytest.fixture(params=["local", "redis"])
async def throttle(request: Any) -> AsyncIterator[Throttle]:
    if request.param == "local":
        yield LocalThrottle()
        return
    request.getfixturevalue("redis_settings")
    from tools_app.throttle.redis import RedisThrottle

    yield RedisThrottle()


async def peak_concurrency(throttles: list[Throttle], pool: Pool, *, calls: int) -> int:
    """Run `calls` short holds spread over `throttles`; return the most that ever ran at once."""
    running = peak = 0

    async def work(throttle: Throttle) -> None:
        nonlocal running, peak
        async with throttle.hold(pool, deadline()):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(work(throttles[i % len(throttles)]) for i in range(calls)))
    return peak


def deadline(seconds: float = 5.0) -> float:
    return time.perf_counter() + seconds


async def pool_state(throttle: Throttle, pool: Pool) -> tuple[int, int]:
    """(in use, waiting) of any pool, read through a fresh snapshot of the backend's own view."""
    if isinstance(throttle, LocalThrottle):
        slots = throttle._pools.get(pool.name)
        return (slots.in_use, len(slots.waiters)) if slots else (0, 0)
    from tools_app.throttle.redis import _Keys

    keys = _Keys(pool)
    in_use, waiting = await throttle._count(keys=[keys.holders, keys.alive])
    return int(in_use), int(waiting)


async def test_no_more_than_the_limit_ever_run_at_once_and_the_limit_is_reached(throttle: Throttle) -> None:
    pool = Pool("provider:kimi", 3)
    assert await peak_concurrency([throttle], pool, calls=30) == 3
    assert await pool_state(throttle, pool) == (0, 0)


async def test_waiters_are_served_first_come_first_served(throttle: Throttle) -> None:
    pool = Pool("provider:glm", 1)
    order: list[int] = []
    holder = await throttle.acquire(pool, deadline())

    async def wait_turn(index: int) -> None:
        async with throttle.hold(pool, deadline()):
            order.append(index)

    tasks = []
    for index in range(6):
        tasks.append(asyncio.ensure_future(wait_turn(index)))
        await asyncio.sleep(0.02)  # queue them in a known order
    await throttle.release(pool, holder)
    await asyncio.gather(*tasks)
    assert order == list(range(6))


async def test_a_wait_past_the_deadline_is_overloaded_and_leaves_the_queue(throttle: Throttle) -> None:
    pool = Pool("global", 1)
    holder = await throttle.acquire(pool, deadline())
    with pytest.raises(Overloaded) as caught:
        await throttle.acquire(pool, deadline(0.15))
    assert caught.value.pool == "global"
    assert await pool_state(throttle, pool) == (1, 0)
    await throttle.release(pool, holder)
    async with throttle.hold(pool, deadline(1)):
        assert await pool_state(throttle, pool) == (1, 0)


async def test_a_call_cancelled_while_queued_or_holding_leaves_nothing_behind(throttle: Throttle) -> None:
    pool = Pool("provider:kimi", 2)
    holding = 0

    async def hold_forever() -> None:
        nonlocal holding
        async with throttle.hold(pool, deadline()):
            holding += 1
            await asyncio.sleep(60)

    holders = [asyncio.ensure_future(hold_forever()) for _ in range(2)]
    # Both must hold before anyone queues, or a queued acquire could take a free slot and finish.
    await wait_for(lambda: holding == 2)
    queued = [asyncio.ensure_future(throttle.acquire(pool, deadline())) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert await pool_state(throttle, pool) == (2, 3)
    for task in holders + queued:
        task.cancel()
    await asyncio.gather(*holders, *queued, return_exceptions=True)
    assert await pool_state(throttle, pool) == (0, 0)
    async with throttle.hold(pool, deadline(1)), throttle.hold(pool, deadline(1)):
        assert await pool_state(throttle, pool) == (2, 0)


async def test_slots_are_taken_user_then_global_then_provider_and_all_given_back(
    throttle: Throttle, settings: Any
) -> None:
    settings.EXAI_USER_MAX_CONCURRENCY = 1
    async with throttle.slots(provider="kimi", user_id=42) as waits:
        assert await pool_state(throttle, Pool("user:42", 1)) == (1, 0)
        assert await pool_state(throttle, Pool("global", 24)) == (1, 0)
        assert await pool_state(throttle, Pool("provider:kimi", 6)) == (1, 0)
        assert waits.global_ms >= 0 and waits.provider_ms >= 0
    for name in ("user:42", "global", "provider:kimi"):
        assert await pool_state(throttle, Pool(name, 1)) == (0, 0)


async def test_an_exception_inside_the_slots_gives_them_back(throttle: Throttle) -> None:
    with pytest.raises(RuntimeError):
        async with throttle.slots(provider="glm", user_id=1):
            raise RuntimeError("provider blew up")
    assert await pool_state(throttle, Pool("global", 1)) == (0, 0)
    assert await pool_state(throttle, Pool("provider:glm", 1)) == (0, 0)


async def test_one_users_flood_does_not_hold_back_another_user(throttle: Throttle, settings: Any) -> None:
    settings.EXAI_USER_MAX_CONCURRENCY = 2
    settings.EXAI_MAX_CONCURRENCY = 4
    settings.EXAI_KIMI_MAX_CONCURRENCY = 4

    async def call(user_id: int, seconds: float) -> float:
        started = time.perf_counter()
        async with throttle.slots(provider="kimi", user_id=user_id):
            await asyncio.sleep(seconds)
        return time.perf_counter() - started

    flood = [asyncio.ensure_future(call(1, 0.3)) for _ in range(20)]
    await asyncio.sleep(0.05)
    other = await call(2, 0.0)
    assert other < 0.2  # it got a slot at once, not after the flood's 3 seconds
    for task in flood:
        task.cancel()
    await asyncio.gather(*flood, return_exceptions=True)


async def test_one_user_holds_at_most_a_share_of_a_provider_and_another_user_waits_for_none(
    throttle: Throttle, settings: Any
) -> None:
    settings.EXAI_KIMI_MAX_CONCURRENCY = 4  # fewer than the 8 calls one user may run at once
    held: list[int] = []

    async def call(user_id: int, seconds: float) -> float:
        started = time.perf_counter()
        async with throttle.slots(provider="kimi", user_id=user_id):
            held.append(user_id)
            await asyncio.sleep(seconds)
        return time.perf_counter() - started

    flood = [asyncio.ensure_future(call(1, 0.3)) for _ in range(8)]
    await asyncio.sleep(0.1)
    assert held == [1, 1]  # half of Kimi's slots (EXAI_USER_PROVIDER_SHARE), not all four
    other = await call(2, 0.0)
    assert other < 0.2  # served at once, not after the flood's first round
    for task in flood:
        task.cancel()
    await asyncio.gather(*flood, return_exceptions=True)


async def test_turns_of_one_conversation_run_one_at_a_time_in_order(throttle: Throttle) -> None:
    log: list[str] = []

    async def turn(index: int) -> None:
        async with throttle.conversation("thread-1"):
            log.append(f"start {index}")
            await asyncio.sleep(0.02)
            log.append(f"end {index}")

    async def warm(index: int) -> None:
        async with throttle.conversation(f"warm-up-{index}"):
            pass

    # Redis connections and scripts ready first: a cold connection (connect, NOSCRIPT, load)
    # can take longer than the 5 ms between turns, and the queue is in order of arrival.
    await asyncio.gather(*(warm(index) for index in range(4)))
    tasks = []
    for index in range(4):
        tasks.append(asyncio.ensure_future(turn(index)))
        await asyncio.sleep(0.005)
    await asyncio.gather(*tasks)
    assert log == [f"{edge} {i}" for i in range(4) for edge in ("start", "end")]


@pytest.mark.usefixtures("redis_settings")
async def test_two_redis_throttles_share_one_exact_limit() -> None:
    from tools_app.throttle.redis import RedisThrottle

    # Two throttles, as two processes would have, sharing one pool.
    assert await peak_concurrency([RedisThrottle(), RedisThrottle()], Pool("provider:kimi", 4), calls=40) == 4


async def test_a_redis_lease_that_is_not_renewed_expires_by_itself(redis_settings: Any) -> None:
    settings = redis_settings
    from tools_app.throttle.redis import RedisThrottle

    settings.EXAI_LEASE_TTL_S = 1.0
    from tools_app.throttle.redis import _keeper

    dead, alive = RedisThrottle(), RedisThrottle()
    pool = Pool("provider:glm", 1)
    lease = await dead.acquire(pool, deadline())
    _keeper.discard(lease)  # the holder "dies": nobody renews or releases its lease
    started = time.perf_counter()
    async with alive.hold(pool, deadline(5)):
        waited = time.perf_counter() - started
    assert 0.5 < waited < 2.5


async def test_a_live_holders_lease_is_renewed_past_its_ttl(redis_settings: Any) -> None:
    settings = redis_settings
    from tools_app.throttle.redis import RedisThrottle

    settings.EXAI_LEASE_TTL_S = 0.6
    holder, other = RedisThrottle(), RedisThrottle()
    pool = Pool("provider:kimi", 1)
    async with holder.hold(pool, deadline()):
        await asyncio.sleep(1.5)  # well past the TTL: the keeper must have renewed it
        with pytest.raises(Overloaded):
            await other.acquire(pool, deadline(0.2))
    async with other.hold(pool, deadline(1)):
        pass


@pytest.mark.usefixtures("redis_settings")
async def test_an_acquire_that_arrives_after_its_abandon_takes_nothing() -> None:
    from tools_app.throttle.redis import RedisThrottle, _Keys, _tombstone

    throttle = RedisThrottle()
    pool, keys, lease = Pool("provider:glm", 4), _Keys(Pool("provider:glm", 4)), "late-lease"
    # The waiter was cancelled and gave back first; its acquire script reaches Redis afterwards.
    await throttle._give_back([pool], [keys], [lease], tombstone=lease)
    granted, _, _ = await throttle._acquire(
        keys=[keys.holders, keys.queue, keys.alive, keys.ticket, _tombstone(lease)],
        args=[lease, 30_000, pool.limit, 3000, 60],
    )
    assert granted == 0
    assert await pool_state(throttle, pool) == (0, 0)


async def test_taking_all_slots_at_once_never_overtakes_a_waiter(redis_settings: Any) -> None:
    settings = redis_settings
    from tools_app.throttle.redis import RedisThrottle

    settings.EXAI_MAX_CONCURRENCY = 1
    throttle = RedisThrottle()
    everyone = Pool("global", 1)
    order: list[str] = []
    holder = await throttle.acquire(everyone, deadline())

    async def queued_first() -> None:
        async with throttle.hold(everyone, deadline()):
            order.append("waiter")

    async def call_after() -> None:
        async with throttle.slots(provider="kimi", user_id=9):
            order.append("call")

    first = asyncio.ensure_future(queued_first())
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(call_after())
    await asyncio.sleep(0.05)
    await throttle.release(everyone, holder)
    await asyncio.gather(first, second)
    assert order == ["waiter", "call"]
