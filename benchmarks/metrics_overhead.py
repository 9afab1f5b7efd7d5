"""Metrics: what recording costs a call, and what summaries and the dashboard cost at scale.

Prints, nothing asserted:
  * recording a call on the caller's path (the core's `call_finished`, which metrics_app
    observes), microseconds (first target: < 100 us p50), with the writer thread flushing
    in the background;
  * /api/metrics/summary/ over 1,000,000 samples in the window (first target on PostgreSQL:
    < 500 ms), overall and grouped by tool, provider and model;
  * the dashboard with that data: the page itself and one live snapshot.

    python benchmarks/metrics_overhead.py [--samples 1000000]
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


def fill(count: int) -> None:
    from django.db import connection

    from metrics_app.models import LatencySample

    LatencySample.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO metrics_app_latencysample (tool, provider, model, request_id, status, total_latency_ms,
                    global_sem_wait_ms, provider_sem_wait_ms, processing_ms, ttft_ms, overhead_ms, tokens_in,
                    tokens_out, bytes_in, bytes_out, cache_hit, created)
                SELECT (ARRAY['chat','codereview','thinkdeep','debug','analyze','planner','consensus','status'])
                           [g %% 8 + 1],
                       (ARRAY['kimi','glm','local'])[g %% 3 + 1], 'model-' || (g %% 5), 'r' || g,
                       CASE WHEN g %% 50 = 0 THEN 'provider_error' ELSE 'ok' END,
                       random() * 2000, random() * 5, random() * 20, random() * 1900, random() * 300, random() * 4,
                       100, 50, 400, 200, false, now() - (g %% 3500) * interval '1 second'
                FROM generate_series(1, %s) AS g
                """,
                [count],
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
                created=now - timezone.timedelta(seconds=g % 3500),
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    database_url = choose_database()
    setup(database_url)
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from metrics_app.dashboard import dashboard_snapshot
    from metrics_app.services import metrics_summary

    print(f"database: {connection.vendor} ({database_url.split('@')[-1]})")
    costs = recording_cost()
    print("recording a call, on its path, microseconds       p50       p95       p99")
    print("  buffer + Prometheus series            {:9.1f} {:9.1f} {:9.1f}".format(*percentiles(costs)))

    started = time.perf_counter()
    fill(args.samples)
    print(f"\n{args.samples:,} samples written in {time.perf_counter() - started:.1f} s")
    hour = timedelta(hours=1)
    overall = timed_ms(lambda: metrics_summary(window=hour, group=[]))
    grouped = timed_ms(lambda: metrics_summary(window=hour, group=["tool", "provider", "model"]))
    total_only = timed_ms(lambda: metrics_summary(window=hour, group=[], parts=("total_latency_ms",)))
    print(f"summary over {args.samples:,} samples, ms (5 runs)   min      median    max")
    summaries = (
        ("overall, all 6 parts", overall),
        ("by tool, provider, model", grouped),
        ("overall, parts=total_latency_ms", total_only),
    )
    for label, times in summaries:
        ordered = sorted(times)
        print(f"  {label:<32} {ordered[0]:9.1f} {ordered[2]:9.1f} {ordered[-1]:9.1f}")

    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser("bench-admin")
    client = Client()
    client.force_login(admin)
    page = timed_ms(lambda: client.get("/dashboard/", HTTP_HOST="localhost"))
    snapshot = timed_ms(lambda: asyncio.run(dashboard_snapshot()))
    print("dashboard with that data, ms (5 runs)              min      median    max")
    for label, times in (("page (/dashboard/)", page), ("live snapshot", snapshot)):
        ordered = sorted(times)
        print(f"  {label:<28} {ordered[0]:9.1f} {ordered[2]:9.1f} {ordered[-1]:9.1f}")


if __name__ == "__main__":
    main()
