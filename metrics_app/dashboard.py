"""What the live dashboard shows, and the task that publishes it to `/ws/dashboard`.

A snapshot holds the last hour per minute and the last day per hour (calls, errors,
throttle waits, p95 by provider), latency percentiles per provider and per tool over both,
throttle and circuit state, this process's sockets, frame rates and memory, and what the
feature apps add (files kept, errors that want a look). It costs a constant number of
queries however many samples there are.

Each server process with a dashboard open publishes its snapshot to the channel-layer
group every EXAI_DASHBOARD_INTERVAL_S while anyone watches; figures from the database and
(with Redis) the throttle and circuits are the cluster's, sockets, frames and memory are
the publishing process's and carry its pid. The database's figures come from the rollups
(metrics_app/rollups.py) and are computed once per refresh for the whole cluster, shared
through the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from exai_site.cache import owned_key
from exai_site.outages import unreachable_service
from metrics_app import rollups, sketches
from metrics_app.services import metrics_summaries
from metrics_app.spend import spend_summary
from tools_app.health import health_snapshot, status_parts
from tools_app.lifecycle import get_lifecycle
from tools_app.observers import frames

logger = logging.getLogger(__name__)

GROUP = "metrics.dashboard"
TOTAL = ("total_latency_ms",)
SERIES_MINUTES = 60
SERIES_HOURS = 24


def _series(first: datetime, points: int, span_s: int) -> dict[str, Any]:
    """Calls, errors, throttle waits (mean and worst) and p95 per provider for each minute (or
    hour) from `first`, read from the per-provider rollups: a constant cost however many calls."""
    step = timedelta(seconds=span_s)
    starts = [first + index * step for index in range(points)]
    rows = rollups.provider_minutes(starts[0], starts[-1], span_s=span_s)
    at = {start: index for index, start in enumerate(starts)}
    calls, errors = [0] * points, [0] * points
    wait_sum: list[float] = [0.0] * points
    wait_max: list[float | None] = [None] * points
    p95: dict[str, list[float | None]] = {}
    for row in rows:
        index = at.get(row.start)
        if index is None:
            continue
        calls[index] += row.count
        errors[index] += row.errors
        wait_sum[index] += row.wait_sum_ms
        wait_max[index] = max(wait_max[index] or 0.0, row.wait_max_ms)
        if row.provider:
            value = sketches.part_quantiles(bytes(row.sketch), rollups.N_PARTS, 0, [0.95])[0]
            p95.setdefault(row.provider, [None] * points)[index] = None if value is None else round(value, 3)
    return {
        "minutes": [int(start.timestamp()) for start in starts],
        "calls": calls,
        "errors": errors,
        # Throttle waits (global and provider slots) per point: the mean and the worst call.
        "wait_mean_ms": [_rounded(wait_sum[i] / calls[i]) if calls[i] else None for i in range(points)],
        "wait_max_ms": [_rounded(value) for value in wait_max],
        "p95_by_provider": dict(sorted(p95.items())),
    }


def _by_provider_and_tool(window: timedelta, now: datetime, suffix: str) -> dict[str, Any]:
    providers, tools = metrics_summaries(
        window=window, groupings=[["provider"], ["tool"]], parts=TOTAL, overall=False, now=now
    )
    return {f"providers{suffix}": providers["groups"], f"tools{suffix}": tools["groups"]}


SPEND_DAYS = 30


def _spend(now: datetime) -> dict[str, Any]:
    """What calls cost over the last 30 days: per day and provider (the chart), per model and
    per user (the tables), from the daily spend rows."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=SPEND_DAYS - 1)
    days = [first + timedelta(days=index) for index in range(SPEND_DAYS)]
    at = {day.isoformat(): index for index, day in enumerate(days)}
    per_day: dict[str, list[float]] = {}
    for row in spend_summary(days=SPEND_DAYS, group=["provider", "day"], today=today)["groups"]:
        per_day.setdefault(row["provider"] or "(none)", [0.0] * SPEND_DAYS)[at[row["day"]]] += row["cost_usd"]
    by_model = spend_summary(days=SPEND_DAYS, group=["provider", "model"], today=today)
    by_user = sorted(
        spend_summary(days=SPEND_DAYS, group=["user"], today=today)["groups"], key=lambda row: -row["cost_usd"]
    )[:10]
    User = get_user_model()
    users = {user.pk: user.get_username() for user in User.objects.filter(pk__in=[row["user"] for row in by_user])}
    return {
        "days": [int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) for day in days],
        "cost_by_provider": {provider: [round(v, 6) for v in values] for provider, values in sorted(per_day.items())},
        "total_usd": by_model["cost_usd"],
        "unpriced_calls": by_model["unpriced_calls"],
        "models": sorted(by_model["groups"], key=lambda row: -row["cost_usd"]),
        "users": [{**row, "user": users.get(row["user"], "(the server)")} for row in by_user],
    }


def _database_part(now: datetime) -> dict[str, Any]:
    current = rollups.floor_minute(now)
    this_hour = rollups.floor_hour(now)
    hour, day = timedelta(hours=1), timedelta(days=1)
    return {
        # When these figures were read: every process shows the same until the next refresh.
        "database_at": now.isoformat(),
        # The last hour per minute, and the last day per hour (the open minute and hour included).
        "series": _series(current - (SERIES_MINUTES - 1) * rollups.MINUTE, SERIES_MINUTES, 60),
        "series_day": _series(this_hour - (SERIES_HOURS - 1) * rollups.HOUR, SERIES_HOURS, 3600),
        # The page shows total latency only, per provider and per tool: each window read once.
        **_by_provider_and_tool(hour, now, ""),
        **_by_provider_and_tool(day, now, "_day"),
        "spend": _spend(now),
        # What the feature apps provide: files kept, errors that want a look (tools_app/health.py).
        **status_parts(),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _rss_bytes() -> int:
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class _Rates:
    """Frames per second since the previous snapshot of this process."""

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.counts = dict(frames)

    def take(self) -> dict[str, float]:
        now, counts = time.monotonic(), dict(frames)
        elapsed = max(now - self.at, 1e-3)
        rates = {
            f"frames_{d}_per_s": round((counts.get(d, 0) - self.counts.get(d, 0)) / elapsed, 2) for d in ("in", "out")
        }
        self.at, self.counts = now, counts
        return rates


_rates = _Rates()


_SHARED_KEY = "exai:dashboard:database"


def _shared_keys() -> tuple[str, str]:
    return owned_key("dashboard", _SHARED_KEY), owned_key("dashboard", f"{_SHARED_KEY}:lease")


async def shared_database_part(now: datetime) -> dict[str, Any]:
    """The database's part of the snapshot, computed once per refresh for the whole cluster.

    It lives in the cache (Redis in cluster mode): the first process to find it older than
    EXAI_DASHBOARD_INTERVAL_S takes a lease for one interval and computes it; the others
    reuse the last one meanwhile (never one older than three intervals). Without the cache
    (a Redis restart) each process computes its own.
    """
    interval = settings.EXAI_DASHBOARD_INTERVAL_S
    key, lease = _shared_keys()
    compute = database_sync_to_async(_database_part)
    try:
        shared = await cache.aget(key)
        age = None if shared is None else now.timestamp() - shared["at"]
        if age is not None and 0 <= age < interval:
            return shared["part"]
        if not await cache.aadd(lease, os.getpid(), timeout=interval):
            if age is not None and 0 <= age < 3 * interval:
                return shared["part"]  # another process is computing the next one
            return await compute(now)
    except Exception as exc:
        if unreachable_service(exc) is None:
            raise
        return await compute(now)
    part = await compute(now)
    try:
        await cache.aset(key, {"at": now.timestamp(), "part": part}, timeout=max(60.0, 3 * interval))
    except Exception as exc:
        if unreachable_service(exc) is None:
            raise
        # The cache is away: not shared this time; the next refresh tries again.
    return part


async def forget_shared_snapshot() -> None:
    """Drop the shared part (the next snapshot computes it afresh)."""
    await cache.adelete_many(list(_shared_keys()))


async def dashboard_snapshot() -> dict[str, Any]:
    now = timezone.now()
    database = await shared_database_part(now)
    health = await health_snapshot()
    lifecycle = get_lifecycle()
    return {
        "at": now.isoformat(),
        **database,
        "throttle": health["throttle"],
        "circuits": health["circuits"],
        "process": {
            "pid": os.getpid(),
            "rss_bytes": _rss_bytes(),
            "sockets": len(lifecycle.sockets),
            "calls_in_flight": len(lifecycle.calls),
            **_rates.take(),
        },
    }


class Publisher:
    """Publishes snapshots to the group while this process has dashboards open."""

    def __init__(self) -> None:
        self.watchers = 0
        self.task: asyncio.Task[None] | None = None

    def watch(self) -> None:
        self.watchers += 1
        running = self.task is not None and not self.task.done()
        if not running or self.task.get_loop() is not asyncio.get_running_loop():  # type: ignore[union-attr]
            self.task = asyncio.ensure_future(self._run())

    def unwatch(self) -> None:
        self.watchers = max(0, self.watchers - 1)
        if self.watchers == 0 and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        layer = get_channel_layer()
        while self.watchers and layer is not None:
            await asyncio.sleep(settings.EXAI_DASHBOARD_INTERVAL_S)
            try:
                snapshot = await dashboard_snapshot()
            except Exception:  # captured as an error like any other; the next tick tries again
                logger.exception("dashboard snapshot failed")
                continue
            await layer.group_send(GROUP, {"type": "dashboard.snapshot", "snapshot": snapshot})


publisher = Publisher()
