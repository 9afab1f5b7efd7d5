"""What the live dashboard shows, and the task that publishes it to `/ws/dashboard`.

A snapshot holds the last hour per minute (calls, errors, p95 by provider), latency
percentiles per provider and per tool, throttle and circuit state, this process's
sockets, frame rates and memory, and file storage with the last cleanup. It costs a
constant number of queries however many samples, tools or providers there are.

Each server process with a dashboard open publishes its snapshot to the channel-layer
group every EXAI_DASHBOARD_INTERVAL_S while anyone watches; figures from the database and
(with Redis) the throttle and circuits are the cluster's, sockets, frames and memory are
the publishing process's and carry its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, F, Max, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from metrics_app.models import LatencySample
from metrics_app.services import PercentileCont, metrics_summary, percentile
from tools_app.health import health_snapshot, status_parts
from tools_app.lifecycle import get_lifecycle
from tools_app.observers import frames

logger = logging.getLogger(__name__)

GROUP = "metrics.dashboard"
TOTAL = ("total_latency_ms",)
SERIES_MINUTES = 60


def _per_minute(since: Any) -> dict[str, Any]:
    """Calls and errors per minute, and p95 latency per minute for each provider."""
    window = LatencySample.objects.filter(created__gte=since).annotate(minute=TruncMinute("created"))
    counts = window.values("minute").annotate(n=Count("id"), errors=Count("id", filter=~Q(status=LatencySample.OK)))
    p95_rows: list[tuple[Any, str, float | None]]
    if connection.vendor == "postgresql":
        p95_rows = list(
            window.exclude(provider="")
            .values("minute", "provider")
            .annotate(p95=PercentileCont(0.95, "total_latency_ms"))
            .values_list("minute", "provider", "p95")
        )
    else:
        values: dict[tuple[Any, str], list[float]] = {}
        for minute, provider, total in window.exclude(provider="").values_list(
            "minute", "provider", "total_latency_ms"
        ):
            values.setdefault((minute, provider), []).append(total)
        p95_rows = [(minute, provider, percentile(v, 0.95)) for (minute, provider), v in values.items()]
    p95: dict[str, dict[int, float]] = {}
    for minute, provider, value in p95_rows:
        p95.setdefault(provider, {})[int(minute.timestamp())] = round(value or 0.0, 3)
    waits = window.values("minute").annotate(
        mean=Avg(F("global_sem_wait_ms") + F("provider_sem_wait_ms")),
        worst=Max(F("global_sem_wait_ms") + F("provider_sem_wait_ms")),
    )
    return {
        "calls": {int(row["minute"].timestamp()): (row["n"], row["errors"]) for row in counts},
        "waits": {int(row["minute"].timestamp()): (row["mean"], row["worst"]) for row in waits},
        "p95_by_provider": p95,
    }


def _database_part(now: Any) -> dict[str, Any]:
    since = now - timedelta(minutes=SERIES_MINUTES)
    per_minute = _per_minute(since)
    start = int(since.replace(second=0, microsecond=0).timestamp()) + 60
    minutes = list(range(start, start + SERIES_MINUTES * 60, 60))
    calls = per_minute["calls"]
    hour = timedelta(hours=1)
    return {
        "series": {
            "minutes": minutes,
            "calls": [calls.get(m, (0, 0))[0] for m in minutes],
            "errors": [calls.get(m, (0, 0))[1] for m in minutes],
            # Throttle waits (global and provider slots) per minute: the mean and the worst call.
            "wait_mean_ms": [_rounded(per_minute["waits"].get(m, (None, None))[0]) for m in minutes],
            "wait_max_ms": [_rounded(per_minute["waits"].get(m, (None, None))[1]) for m in minutes],
            "p95_by_provider": {
                provider: [by_minute.get(m) for m in minutes]
                for provider, by_minute in sorted(per_minute["p95_by_provider"].items())
            },
        },
        # The page shows total latency only: one sort of the window per grouping, not six.
        "providers": metrics_summary(window=hour, group=["provider"], parts=TOTAL, overall=False)["groups"],
        "tools": metrics_summary(window=hour, group=["tool"], parts=TOTAL, overall=False)["groups"],
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


async def dashboard_snapshot() -> dict[str, Any]:
    now = timezone.now()
    database = await database_sync_to_async(_database_part)(now)
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
