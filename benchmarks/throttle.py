"""The throttle's own cost, both backends side by side, plus the breaker and the hashes.

Prints, nothing asserted:
  * acquire+release of one slot, and of a provider call's three (user, global, provider):
    p50/p99 in microseconds, in-process and Redis on loopback;
  * a saturation run: 64 workers sharing 4 slots, each holding 5 ms, 20 times:
    throughput and wait-time percentiles (fairness shows as a tight p99);
  * a flood: one user keeps 16 Kimi calls going (50 ms each) while another makes 20 calls;
    the other user's wait, with one user allowed all of Kimi's slots (share 1.0, as before)
    and with EXAI_USER_PROVIDER_SHARE's default (0.5);
  * circuit-breaker check (admit + record) per call;
  * rate limits: a user's call admitted (in-process and Redis) and a frame counted, per call;
  * budgets, per provider request: the check with no budget, the check against a daily and
    monthly budget, and counting a reply's cost (in-process and Redis; budgets as the
    process caches them between reads, counters already started);
  * xxhash (xxh3_64, xxh3_128) against SHA-256 on 1 MiB and 64 MiB buffers.

    python benchmarks/throttle.py [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentiles


def setup_django(redis_url: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exai_site.settings")
    os.environ["REDIS_URL"] = redis_url
    os.environ["EXAI_REDIS_PREFIX"] = f"exai-bench-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("KIMI_API_KEY", "bench")
    import django

    django.setup()


def backends() -> dict[str, Any]:
    from tools_app.throttle.local import LocalThrottle
    from tools_app.throttle.redis import RedisThrottle

    return {"in-process": LocalThrottle(), "redis": RedisThrottle()}


async def hold_latency(throttle: Any, rounds: int) -> tuple[list[float], list[float]]:
    from tools_app.throttle import Pool

    pool = Pool("provider:kimi", 1000)
    one, three = [], []
    for i in range(rounds):
        deadline = time.perf_counter() + 5
        started = time.perf_counter()
        async with throttle.hold(pool, deadline):
            pass
        one.append((time.perf_counter() - started) * 1e6)
        started = time.perf_counter()
        async with throttle.slots(provider="kimi", user_id=i % 16):
            pass
        three.append((time.perf_counter() - started) * 1e6)
    return one, three


async def saturation(
    throttle: Any, workers: int = 64, rounds: int = 20, hold_s: float = 0.005
) -> tuple[float, list[float]]:
    from tools_app.throttle import Pool

    pool = Pool(f"provider:saturation-{uuid.uuid4().hex[:6]}", 4)
    waits: list[float] = []

    async def worker() -> None:
        for _ in range(rounds):
            async with throttle.hold(pool, time.perf_counter() + 60) as waited_ms:
                waits.append(waited_ms)
                await asyncio.sleep(hold_s)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return workers * rounds / (time.perf_counter() - started), waits


async def flood_wait(throttle: Any, share: float) -> list[float]:
    from django.conf import settings

    settings.EXAI_USER_PROVIDER_SHARE = share
    flooder, other = f"flood-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    stop = asyncio.Event()

    async def flood() -> None:
        while not stop.is_set():
            async with throttle.slots(provider="kimi", user_id=flooder):
                await asyncio.sleep(0.05)

    floods = [asyncio.ensure_future(flood()) for _ in range(16)]
    await asyncio.sleep(0.2)
    waits = []
    for _ in range(20):
        started = time.perf_counter()
        async with throttle.slots(provider="kimi", user_id=other):
            waits.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)
    stop.set()
    await asyncio.gather(*floods)
    return waits


async def breaker_cost(rounds: int) -> dict[str, list[float]]:
    from tools_app.circuit import LocalCircuitBreaker, RedisCircuitBreaker

    results = {}
    for name, breaker in {"in-process": LocalCircuitBreaker(), "redis": RedisCircuitBreaker()}.items():
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            admission = await breaker.admit("kimi", "Kimi", probe_ttl_s=30)
            await breaker.record("kimi", None, probe=admission.probe)
            samples.append((time.perf_counter() - started) * 1e6)
        results[name] = samples
    return results


async def rate_limit_cost(rounds: int) -> dict[str, list[float]]:
    from django.conf import settings

    from tools_app.ratelimit import frame_limiter, user_call_admit

    settings.EXAI_USER_CALLS_PER_MIN = 10**9  # admitted every time: the cost of counting, not of refusing
    results = {}
    for name, redis_url in (("in-process", ""), ("redis", settings.REDIS_URL)):
        settings.REDIS_URL = redis_url
        samples = []
        for i in range(rounds):
            started = time.perf_counter()
            await user_call_admit(i % 16)
            samples.append((time.perf_counter() - started) * 1e6)
        results[f"{name} user call"] = samples
    limiter, frames = frame_limiter(), []
    for _ in range(rounds):
        started = time.perf_counter()
        limiter.take()
        frames.append((time.perf_counter() - started) * 1e6)
    results["frame (per socket)"] = frames
    return results


async def budget_cost(rounds: int) -> dict[str, list[float]]:
    from django.conf import settings

    from tools_app import budgets

    settings.EXAI_BUDGET_CACHE_S = 10**9  # as between two reads of the admin's budgets
    budgets.provide_spend_source(lambda user_id, since: 0.0)  # nothing recorded: no database here
    results = {}
    for name, redis_url in (("in-process", ""), ("redis", settings.REDIS_URL)):
        settings.REDIS_URL = redis_url
        budgets._limits.clear()
        budgets._limits.update({1: (time.monotonic(), budgets.Limits(None, None))})
        budgets._limits.update({2: (time.monotonic(), budgets.Limits(10**6, 10**7))})
        for label, user_id in (("check, no budget", 1), ("check, day + month", 2)):
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                await budgets.check_budget(user_id)
                samples.append((time.perf_counter() - started) * 1e6)
            results[f"{name} {label}"] = samples
        counted = []
        for _ in range(rounds):
            started = time.perf_counter()
            await budgets.add_spent(2, 0.0003)
            counted.append((time.perf_counter() - started) * 1e6)
        results[f"{name} count a reply"] = counted
    return results


def hash_throughput() -> list[tuple[str, str, float]]:
    import xxhash

    rows = []
    for label, size in (("1 MiB", 1 << 20), ("64 MiB", 64 << 20)):
        data = os.urandom(size)
        repeat = max(1, (256 << 20) // size)
        for name, digest in (
            ("sha256", lambda b: hashlib.sha256(b).digest()),
            ("xxh3_64", xxhash.xxh3_64_digest),
            ("xxh3_128", xxhash.xxh3_128_digest),
        ):
            started = time.perf_counter()
            for _ in range(repeat):
                digest(data)
            rows.append((label, name, size * repeat / (time.perf_counter() - started) / (1 << 20)))
    return rows


def fmt(values: list[float]) -> str:
    p50, p95, p99 = percentiles(values)
    return f"{p50:9.1f} {p95:9.1f} {p99:9.1f}"


async def run(rounds: int) -> None:
    print("\nacquire + release, microseconds           p50       p95       p99")
    for name, throttle in backends().items():
        one, three = await hold_latency(throttle, rounds)
        print(f"  {name:<12} one slot              {fmt(one)}")
        print(f"  {name:<12} user+global+provider  {fmt(three)}")

    print("\nsaturation: 64 workers, 4 slots, 5 ms holds   calls/s   wait ms p50       p95       p99")
    for name, throttle in backends().items():
        rate, waits = await saturation(throttle)
        print(f"  {name:<12}                              {rate:8.1f} {fmt(waits)}")

    print("\nanother user's wait while one user floods Kimi, ms   p50       p95       p99")
    for name, throttle in backends().items():
        for share, label in ((1.0, "one user may take all slots"), (0.5, "share 0.5 (the default)")):
            print(f"  {name:<12} {label:<30} {fmt(await flood_wait(throttle, share))}")

    print("\ncircuit breaker admit + record, microseconds  p50       p95       p99")
    for name, samples in (await breaker_cost(rounds)).items():
        print(f"  {name:<12}                          {fmt(samples)}")

    print("\nrate limits, microseconds                    p50       p95       p99")
    for name, samples in (await rate_limit_cost(rounds)).items():
        print(f"  {name:<24}              {fmt(samples)}")

    print("\nbudgets per provider request, microseconds   p50       p95       p99")
    for name, samples in (await budget_cost(rounds)).items():
        print(f"  {name:<32}      {fmt(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    setup_django(args.redis_url)
    asyncio.run(run(args.rounds))
    print("\nhash throughput, MiB/s")
    for label, name, rate in hash_throughput():
        print(f"  {label:<7} {name:<9} {rate:10.0f}")


if __name__ == "__main__":
    main()
