"""Metrics: what recording costs a call, and what summaries and the dashboard cost at scale.

Prints, nothing asserted:
  * recording a call on the caller's path (the core's `call_finished`, which metrics_app
    observes), microseconds (first target: < 100 us p50), with the writer thread flushing
    in the background;
  * what the writer thread stores per second, raw rows only (before rollups) and raw rows
    with their rollups (after);
  * an hour of 1,000,000 samples and a day of 24,000,000 (120 groups, latencies uniform to
    2 s): /api/metrics/summary/ (overall, grouped by tool, provider and model, one part) and
    the dashboard's database part, before (percentile_cont over the raw samples, as it was
    computed until rollups; on PostgreSQL) and after (rollups and sliding windows), side by
    side; then the shared live snapshot and the page.

    python benchmarks/metrics_overhead.py [--hour-samples 1000000] [--day-samples 24000000]
Uses DATABASE_URL when it is PostgreSQL, else the local PostgreSQL at 127.0.0.1:5432 (a
database `exai_bench_metrics` it creates), else a temporary SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, percentiles

LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432/exai_bench_metrics"


def choose_database() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        return url
    try:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=2) as db:
            if not db.execute("SELECT 1 FROM pg_database WHERE datname = 'exai_bench_metrics'").fetchone():
                db.execute("CREATE DATABASE exai_bench_metrics")
        return LOCAL_POSTGRES
    except Exception:
        return f"sqlite:///{tempfile.mkdtemp(prefix='exai-bench-')}/metrics.sqlite3"


def setup(database_url: str) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="exai_site.settings", DATABASE_URL=database_url, EXAI_LOG_LEVEL="WARNING")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    import django

    django.setup()


def recording_cost(rounds: int = 20_000) -> list[float]:
    from metrics_app.recorder import buffer
    from tools_app.observers import CallSample, call_finished

    metrics = {"total_latency_ms": 12.5, "global_sem_wait_ms": 0.1, "provider_sem_wait_ms": 0.2, "processing_ms": 10.0}
    costs = []
    for index in range(rounds):
        started = time.perf_counter()
        call_finished(  # what the core does at the end of a call: metrics_app records it
            CallSample(
                tool="chat",
                user_id=1,
                request_id=f"bench-{index}",
                status="ok",
                metrics=metrics,
                provider="kimi",
                model="kimi-k2.6",
                ttft_ms=3.0,
                tokens_in=100,
                tokens_out=50,
            )
        )
        costs.append((time.perf_counter() - started) * 1e6)
    buffer.flush()
    return costs


def fill(count: int, spread_s: int) -> None:
    """`count` samples spread evenly over the last `spread_s` seconds: 8 tools x 3 providers x
    5 models (120 groups), latencies uniform up to 2 s, one call in 50 failed."""
    from django.db import connection

    from metrics_app.models import LatencyRollup, LatencySample, RollupWindow

    LatencySample.objects.all().delete()
    LatencyRollup.objects.all().delete()
    RollupWindow.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE metrics_app_latencysample")
            for first in range(1, count + 1, 4_000_000):  # in parts: one statement per 4M rows
                cursor.execute(
                    """
                    INSERT INTO metrics_app_latencysample (tool, provider, model, request_id, status,
                        total_latency_ms, global_sem_wait_ms, provider_sem_wait_ms, processing_ms, ttft_ms,
                        overhead_ms, tokens_in, tokens_out, bytes_in, bytes_out, cache_hit, created)
                    SELECT (ARRAY['chat','codereview','thinkdeep','debug','analyze','planner','consensus','status'])
                               [g %% 8 + 1],
                           (ARRAY['kimi','glm','local'])[g %% 3 + 1], 'model-' || (g %% 5), 'r' || g,
                           CASE WHEN g %% 50 = 0 THEN 'provider_error' ELSE 'ok' END,
                           random() * 2000, random() * 5, random() * 20, random() * 1900, random() * 300,
                           random() * 4, 100, 50, 400, 200, false, now() - (g %% %s) * interval '1 second'
                    FROM generate_series(%s, %s) AS g
                    """,
                    [spread_s, first, min(count, first + 4_000_000 - 1)],
                )
            cursor.execute("ANALYZE metrics_app_latencysample")
        return
    import random

    from django.utils import timezone

    now = timezone.now()
    tools = ["chat", "codereview", "thinkdeep", "debug", "analyze", "planner", "consensus", "status"]
    batch = []
    for g in range(count):
        batch.append(
            LatencySample(
                tool=tools[g % 8],
                provider=["kimi", "glm", "local"][g % 3],
                model=f"model-{g % 5}",
                request_id=f"r{g}",
                status="provider_error" if g % 50 == 0 else "ok",
                total_latency_ms=random.random() * 2000,
                processing_ms=random.random() * 1900,
                overhead_ms=random.random() * 4,
                created=now - timezone.timedelta(seconds=g % spread_s),
            )
        )
        if len(batch) == 50_000:
            LatencySample.objects.bulk_create(batch)
            batch = []
    LatencySample.objects.bulk_create(batch)


def timed_ms(function, runs: int = 5) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


# --- before: what the summary and the dashboard computed from the raw samples, until rollups ---

RAW_PARTS = (
    "total_latency_ms",
    "global_sem_wait_ms",
    "provider_sem_wait_ms",
    "processing_ms",
    "ttft_ms",
    "overhead_ms",
)


def raw_summary(window, group, parts=RAW_PARTS):  # type: ignore[no-untyped-def]
    """The summary as it was: percentile_cont over the window's raw samples, one sort per part."""
    from django.contrib.postgres.fields import ArrayField
    from django.db.models import Aggregate, Count, FloatField, Q
    from django.utils import timezone

    from metrics_app.models import LatencySample

    class PercentileCont(Aggregate):
        function = "PERCENTILE_CONT"
        template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    samples = LatencySample.objects.filter(created__gte=timezone.now() - window)
    aggregates = {"n": Count("id"), "errors": Count("id", filter=~Q(status="ok"))}
    for part in parts:
        aggregates[part] = PercentileCont(
            part, fraction="ARRAY[0.5,0.95,0.99]::float8[]", output_field=ArrayField(FloatField())
        )
    if group:
        return list(samples.values(*group).annotate(**aggregates).order_by(*group))
    return samples.aggregate(**aggregates)


def raw_snapshot() -> None:
    """The dashboard's database part as it was: the last hour per minute (calls, errors, waits,
    p95 per provider) and two grouped summaries, all from the raw samples."""
    from datetime import timedelta

    from django.db.models import Avg, Count, F, Max, Q
    from django.db.models.functions import TruncMinute
    from django.utils import timezone

    from metrics_app.models import LatencySample

    hour = timedelta(hours=1)
    window = LatencySample.objects.filter(created__gte=timezone.now() - hour).annotate(minute=TruncMinute("created"))
    list(window.values("minute").annotate(n=Count("id"), errors=Count("id", filter=~Q(status="ok"))))
    from django.db.models import Aggregate, FloatField

    class PercentileCont(Aggregate):
        function = "PERCENTILE_CONT"
        template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    list(
        window.exclude(provider="")
        .values("minute", "provider")
        .annotate(p95=PercentileCont("total_latency_ms", fraction="0.95", output_field=FloatField()))
    )
    list(
        window.values("minute").annotate(
            mean=Avg(F("global_sem_wait_ms") + F("provider_sem_wait_ms")),
            worst=Max(F("global_sem_wait_ms") + F("provider_sem_wait_ms")),
        )
    )
    raw_summary(hour, ["provider"], parts=("total_latency_ms",))
    raw_summary(hour, ["tool"], parts=("total_latency_ms",))


def writer_throughput(count: int = 20_000) -> tuple[float, float]:
    """Samples per second the writer stores: raw rows only (before), and raw rows with their
    rollups in one transaction (after), in batches of EXAI_METRICS_BATCH."""
    from django.conf import settings
    from django.utils import timezone

    from metrics_app.models import LatencySample
    from metrics_app.rollups import write_samples

    def batch() -> list[LatencySample]:
        now = timezone.now()
        return [
            LatencySample(
                tool=f"tool{i % 8}",
                provider=("kimi", "glm", "local")[i % 3],
                model=f"model-{i % 5}",
                request_id=f"w{i}",
                total_latency_ms=(i * 7919) % 2000 + 0.5,
                processing_ms=(i * 104729) % 1900 + 0.5,
                overhead_ms=1.5,
                created=now,
            )
            for i in range(settings.EXAI_METRICS_BATCH)
        ]

    rates = []
    for write in (lambda items: LatencySample.objects.bulk_create(items), write_samples):
        written, started = 0, time.perf_counter()
        while written < count:
            write(batch())
            written += settings.EXAI_METRICS_BATCH
        rates.append(written / (time.perf_counter() - started))
    return rates[0], rates[1]


def median(times: list[float]) -> float:
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hour-samples", type=int, default=1_000_000, help="the hour's samples (0: skip)")
    parser.add_argument("--day-samples", type=int, default=24_000_000, help="the day's samples (0: skip)")
    args = parser.parse_args()
    database_url = choose_database()
    setup(database_url)
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    print(f"database: {connection.vendor} ({database_url.split('@')[-1]})")
    costs = recording_cost()
    print("recording a call, on its path, microseconds       p50       p95       p99")
    print("  buffer + Prometheus series            {:9.1f} {:9.1f} {:9.1f}".format(*percentiles(costs)))
    raw_rate, rolled_rate = writer_throughput()
    print("the writer thread, off the call path, samples/s (batches of 1,000)")
    print(f"  raw rows only (before)                {raw_rate:9,.0f}")
    print(f"  raw rows + rollups (after)            {rolled_rate:9,.0f}")

    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser("bench-admin")
    client = Client()
    client.force_login(admin)
    postgres = connection.vendor == "postgresql"
    for label, count, spread_s, window in (
        ("an hour", args.hour_samples, 3500, timedelta(hours=1)),
        ("a day", args.day_samples, 86_340, timedelta(days=1)),
    ):
        if count:
            measure_scale(label, count, spread_s, window, postgres=postgres, client=client)


def measure_scale(label: str, count: int, spread_s: int, window: Any, *, postgres: bool, client: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from metrics_app.dashboard import _database_part, dashboard_snapshot
    from metrics_app.rollups import rebuild_rollups
    from metrics_app.services import metrics_summary

    started = time.perf_counter()
    fill(count, spread_s)
    filled = time.perf_counter() - started
    started = time.perf_counter()
    rebuild_rollups(since=timezone.now() - window - timedelta(hours=1))
    print(
        f"\n{label}: {count:,} samples written in {filled:.1f} s; "
        f"rolled up from them (rebuild_rollups) in {time.perf_counter() - started:.1f} s"
    )
    runs = 3 if count <= 2_000_000 else 1
    every = ["tool", "provider", "model"]
    total = ("total_latency_ms",)
    rows = [
        (
            "summary, overall, all 6 parts",
            lambda: raw_summary(window, []),
            lambda: metrics_summary(window=window, group=[]),
        ),
        (
            "summary by tool, provider, model",
            lambda: raw_summary(window, every),
            lambda: metrics_summary(window=window, group=every),
        ),
        (
            "summary, parts=total_latency_ms",
            lambda: raw_summary(window, [], parts=total),
            lambda: metrics_summary(window=window, group=[], parts=total),
        ),
        ("dashboard snapshot, database part", raw_snapshot, lambda: _database_part(timezone.now())),
    ]
    metrics_summary(window=window, group=[])  # the first reader sums the sliding window
    print(f"  median ms ({runs} run(s) before, 5 after)     before      after   speed-up")
    for name, before, after in rows:
        old = median(timed_ms(before, runs)) if postgres else float("nan")
        new = median(timed_ms(after))
        print(f"  {name:<36} {old:9.1f} {new:9.1f} {old / new:9.0f}x")
    shared = median(timed_ms(lambda: asyncio.run(dashboard_snapshot())))
    page = median(timed_ms(lambda: client.get("/dashboard/", HTTP_HOST="localhost")))
    print(f"  {'live snapshot (shared, per process)':<36} {'':>9} {shared:9.1f}")
    print(f"  {'page (/dashboard/)':<36} {'':>9} {page:9.1f}")


if __name__ == "__main__":
    main()
