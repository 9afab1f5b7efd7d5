"""Rollups: sketches within 1 % of exact percentiles, sliding windows that stay exact as they
move and as samples arrive late, several processes writing one minute at once, rebuilds."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from metrics_app import rollups, sketches
from metrics_app.models import LatencyRollup, LatencySample, RollupWindow, RollupWindowGroup
from metrics_app.rollups import write_samples
from metrics_app.services import PARTS, metrics_summary
from tests.conftest import ROOT, database_url

pytestmark = pytest.mark.django_db(transaction=True)

ACCURACY = sketches.RELATIVE_ACCURACY * (1 + 1e-9)  # the bound is inclusive (a bin's edge)


def sample(at: datetime, *, tool: str = "chat", provider: str = "kimi", total: float = 10.0, **parts: Any) -> Any:
    return LatencySample(
        tool=tool,
        provider=provider,
        model=f"{provider}-model",
        request_id=uuid.uuid4().hex,
        status=parts.pop("status", "ok"),
        total_latency_ms=total,
        created=at,
        **parts,
    )


def exact(values: list[float], fraction: float) -> float:
    """The value at rank fraction * (n - 1), rounded down: what DDSketch's answer is within 1 % of."""
    ordered = sorted(values)
    return ordered[math.floor(fraction * (len(ordered) - 1))]


def stored_rows() -> dict[tuple[Any, ...], tuple[int, int, list[int]]]:
    return {
        (r.grain, r.span_s, r.start, r.tool, r.provider, r.model): (
            r.count,
            r.errors,
            sketches.decode(bytes(r.sketch), len(PARTS)).tolist(),
        )
        for r in LatencyRollup.objects.all()
    }


def test_every_part_is_within_one_percent_of_the_exact_percentile_per_group_and_overall() -> None:
    rng = random.Random(7)
    now = timezone.now()
    batch, values = [], {part: [] for part in PARTS}
    by_tool: dict[str, list[float]] = {"chat": [], "debug": []}
    for index in range(6000):
        tool = "chat" if index % 3 else "debug"
        row = {
            "total": rng.lognormvariate(6, 1.2),  # ~400 ms, a long tail
            "global_sem_wait_ms": 0.0 if index % 4 else rng.expovariate(1 / 30),  # mostly no wait at all
            "provider_sem_wait_ms": rng.uniform(0, 50),
            "processing_ms": rng.lognormvariate(5.8, 1.0),
            "ttft_ms": None if index % 5 == 0 else rng.uniform(50, 900),
            "overhead_ms": rng.uniform(0.5, 4),
        }
        at = now - timedelta(seconds=rng.uniform(0, 50 * 60))  # spread over the last 50 minutes
        batch.append(sample(at, tool=tool, **row))
        by_tool[tool].append(row["total"])
        values["total_latency_ms"].append(row.pop("total"))
        for part, value in row.items():
            if value is not None:
                values[part].append(value)
    for start in range(0, len(batch), 500):  # as the writer does: batches, some minutes in several
        write_samples(batch[start : start + 500])

    summary = metrics_summary(window=timedelta(hours=1), group=["tool"], now=now)
    assert summary["count"] == 6000
    for part in PARTS:
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            assert summary["latency"][part][name] == pytest.approx(
                exact(values[part], fraction), rel=ACCURACY, abs=1e-3
            )
    for group in summary["groups"]:
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            assert group["latency"]["total_latency_ms"][name] == pytest.approx(
                exact(by_tool[group["tool"]], fraction), rel=ACCURACY
            )


def test_windows_are_whole_minutes_and_stay_exact_as_the_sliding_ones_move() -> None:
    t0 = rollups.floor_minute(timezone.now()) + timedelta(seconds=30)
    ages = {"90 min ago": 90, "30 min ago": 30, "a minute ago": 1, "now": 0}
    for name, minutes in ages.items():
        write_samples([sample(t0 - timedelta(minutes=minutes), tool=name.replace(" ", "-"))] * 1)
    write_samples([sample(t0 - timedelta(minutes=30), status="timeout")])

    def count(window: timedelta, now: datetime) -> tuple[int, float]:
        summary = metrics_summary(window=window, group=[], now=now)
        return summary["count"], summary["error_rate"]

    hour, day = timedelta(hours=1), timedelta(days=1)
    assert count(hour, t0) == (4, 0.25)  # the 90-minute-old call is outside
    assert count(day, t0) == (5, 0.2)
    assert count(timedelta(hours=3), t0) == (5, 0.2)  # not a kept window: whole hours + minutes
    assert count(timedelta(minutes=1), t0)[0] == 1  # the open minute alone
    summary = metrics_summary(window=hour, group=[], now=t0)
    assert summary["since"] == (rollups.floor_minute(t0) - timedelta(minutes=59)).isoformat()
    # 31 minutes on: the two 30-minute-old calls have left the hour, the rest stayed.
    later = t0 + timedelta(minutes=31)
    assert count(hour, later) == (2, 0.0)
    assert count(day, later) == (5, 0.2)
    window = RollupWindow.objects.get(minutes=60)
    assert window.through == rollups.floor_minute(later) - timedelta(minutes=1)
    assert sum(RollupWindowGroup.objects.filter(window=window).values_list("count", flat=True)) == 2
    # Idle for longer than the window: summed afresh.
    assert count(hour, t0 + timedelta(hours=3)) == (0, 0.0)
    assert count(day, t0 + timedelta(hours=3)) == (5, 0.2)


def test_a_sample_written_late_into_a_summed_minute_is_counted_once() -> None:
    now = timezone.now()
    write_samples([sample(now - timedelta(minutes=10))])
    assert metrics_summary(window=timedelta(hours=1), group=[], now=now)["count"] == 1  # sums the window
    # Written after the window summed its minute (a batch held while the database was away).
    write_samples([sample(now - timedelta(minutes=10), total=500.0)] * 3 + [sample(now - timedelta(minutes=3))])
    summary = metrics_summary(window=timedelta(hours=1), group=[], now=now)
    assert summary["count"] == 5
    assert summary["latency"]["total_latency_ms"]["p50"] == pytest.approx(500.0, rel=ACCURACY)
    # Moving on, the late sample leaves with its minute: nothing is left behind or counted twice.
    assert metrics_summary(window=timedelta(hours=1), group=[], now=now + timedelta(minutes=55))["count"] == 1
    assert metrics_summary(window=timedelta(hours=1), group=[], now=now + timedelta(minutes=62))["count"] == 0


def test_a_rebuild_from_the_raw_samples_gives_the_same_rollups() -> None:
    now = timezone.now()
    rng = random.Random(3)
    write_samples(
        [
            sample(
                now - timedelta(minutes=rng.randrange(0, 150)), tool=rng.choice(["a", "b"]), total=rng.uniform(1, 900)
            )
            for _ in range(400)
        ]
    )
    before = stored_rows()
    metrics_summary(window=timedelta(hours=1), group=[], now=now)
    out = StringIO()
    call_command("rebuild_rollups", stdout=out, stderr=StringIO())
    assert "rolled up 400 latency samples" in out.getvalue()
    assert stored_rows() == before
    assert RollupWindow.objects.get(minutes=60).through is None  # the windows start afresh
    assert metrics_summary(window=timedelta(hours=1), group=[], now=now)["count"] == sum(
        1 for s in LatencySample.objects.all() if s.created >= rollups.floor_minute(now) - timedelta(minutes=59)
    )


def test_cleanup_trims_rollups_after_their_own_retention(settings: Any) -> None:
    now = timezone.now()
    write_samples([sample(now - timedelta(days=5)), sample(now - timedelta(days=1)), sample(now)])
    settings.EXAI_ROLLUP_RETENTION_DAYS = 3
    out = StringIO()
    call_command("cleanup_metrics", "--older-than-days", "2", stdout=out, stderr=StringIO())
    assert "deleted 1 latency samples" in out.getvalue() and "deleted 4 rollups" in out.getvalue()
    assert LatencySample.objects.count() == 2
    assert not LatencyRollup.objects.filter(start__lt=now - timedelta(days=3)).exists()
    assert LatencyRollup.objects.filter(grain="group", span_s=60).count() == 2


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("sqlite") or not os.environ.get("DATABASE_URL"),
    reason="several writing processes need PostgreSQL (SQLite serialises its writers: one process)",
)
def test_two_processes_writing_the_same_minutes_lose_and_double_count_nothing() -> None:
    now = timezone.now()
    write_samples([sample(now - timedelta(minutes=5))])
    metrics_summary(window=timedelta(hours=1), group=[], now=now)  # the hour is summed through now - 1
    writer = textwrap.dedent(
        f"""
        import random, sys, uuid, django
        from datetime import datetime, timedelta
        django.setup()
        from metrics_app.models import LatencySample
        from metrics_app.rollups import write_samples
        rng = random.Random(int(sys.argv[1]))
        now = datetime.fromisoformat({now.isoformat()!r})
        for _ in range(30):
            write_samples([
                LatencySample(
                    tool=rng.choice(["chat", "debug"]), provider=rng.choice(["kimi", "glm"]), model="m",
                    request_id=uuid.uuid4().hex, status=rng.choice(["ok", "ok", "timeout"]),
                    total_latency_ms=rng.uniform(1, 2000), global_sem_wait_ms=rng.uniform(0, 5),
                    # the open minute, and minutes the sliding hour has already summed (late ones)
                    created=now - timedelta(minutes=rng.choice([0, 0, 1, 2, 5]), seconds=rng.uniform(0, 20)),
                )
                for _ in range(40)
            ])
        """
    )
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "exai_site.settings"}
    writers = [
        subprocess.Popen([sys.executable, "-c", writer, str(seed)], cwd=ROOT, env=env, stderr=subprocess.PIPE)
        for seed in (1, 2)
    ]
    for process in writers:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors.decode()[-2000:]

    total = LatencySample.objects.count()
    assert total == 1 + 2 * 30 * 40
    # Every row equals what the raw samples make of it, counts and bins alike.
    with connection.cursor():
        expected = {
            key: (delta.count, delta.errors, delta.dense().tolist())
            for key, delta in rollups.deltas_of(rollups.records_of(list(LatencySample.objects.all()))).items()
        }
    assert stored_rows() == expected
    # The sliding hour took the late samples from their writers: it matches a fresh sum.
    summary = metrics_summary(window=timedelta(hours=1), group=["tool"], now=now)
    assert summary["count"] == total
    RollupWindow.objects.update(through=None)
    assert metrics_summary(window=timedelta(hours=1), group=["tool"], now=now) == summary


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("sqlite") or not os.environ.get("DATABASE_URL"),
    reason="table locks are PostgreSQL's",
)
def test_a_flush_while_a_migration_holds_the_tables_waits_for_the_next_one(settings: Any) -> None:
    import psycopg

    from metrics_app.recorder import SampleBuffer

    settings.EXAI_METRICS_FLUSH_S = 60  # its writer thread stays asleep: the test flushes
    buffer = SampleBuffer()
    now = timezone.now()
    buffer.add(sample(now))
    # As a schema change (or a test's TRUNCATE) would: the rollups table held exclusively.
    with psycopg.connect(database_url().replace("postgres://", "postgresql://")) as other:
        other.execute("LOCK TABLE metrics_app_latencyrollup IN ACCESS EXCLUSIVE MODE")
        assert buffer.flush() == 0  # not written, not waited for (a deadlock otherwise), not lost
    assert buffer.flush() == 1
    assert LatencySample.objects.count() == 1 and metrics_summary(window=timedelta(hours=1), group=[])["count"] == 1
