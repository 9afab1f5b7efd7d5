"""Latency summaries over a time window: count, error rate and p50/p95/p99 of every part.

On PostgreSQL the percentiles are computed by the database (`percentile_cont`, one
grouped query); elsewhere the window's values are read in one query and the same
definition (linear interpolation between the closest ranks) is applied in Python.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Q, QuerySet
from django.utils import timezone

from metrics_app.models import LatencySample

PARTS = ("total_latency_ms", "global_sem_wait_ms", "provider_sem_wait_ms", "processing_ms", "ttft_ms", "overhead_ms")
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
GROUPS = ("tool", "provider", "model")
_WINDOW = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    """`15m`, `1h`, `7d` as a timedelta; ValueError for anything else."""
    match = _WINDOW.match(text.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(f"window {text!r} is not a number of minutes, hours or days like 15m, 1h or 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont: one fraction, or several computed from a single sort."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, fraction: float | tuple[float, ...], expression: str, **extra: Any) -> None:
        if isinstance(fraction, tuple):
            from django.contrib.postgres.fields import ArrayField

            rendered = "ARRAY[" + ",".join(repr(float(f)) for f in fraction) + "]::float8[]"
            super().__init__(expression, fraction=rendered, output_field=ArrayField(FloatField()), **extra)
        else:
            super().__init__(expression, fraction=repr(float(fraction)), output_field=FloatField(), **extra)


def percentile(values: list[float], fraction: float) -> float | None:
    """percentile_cont's definition: linear interpolation at rank fraction * (n - 1) of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def metrics_summary(
    *, window: timedelta, group: list[str], parts: tuple[str, ...] = PARTS, overall: bool = True
) -> dict[str, Any]:
    """The window's totals, and the same per group (any of tool, provider, model).

    Each part costs the database one sort of the window's values: callers that show only
    some parts (the dashboard) ask for those only.
    """
    since = timezone.now() - window
    samples = LatencySample.objects.filter(created__gte=since)
    summarize = _summarize_in_sql if connection.vendor == "postgresql" else _summarize_in_python
    totals = summarize(samples, [], parts) if overall else []
    return {
        "since": since.isoformat(),
        **(totals[0] if totals else _empty(parts)),
        "groups": summarize(samples, group, parts) if group else [],
    }


def _empty(parts: tuple[str, ...]) -> dict[str, Any]:
    return {
        "count": 0,
        "error_rate": 0.0,
        "latency": {part: dict.fromkeys(n for n, _ in PERCENTILES) for part in parts},
    }


def _shape(
    keys: dict[str, Any], count: int, errors: int, latency: dict[str, dict[str, float | None]]
) -> dict[str, Any]:
    rounded = {
        part: {n: None if v is None else round(v, 3) for n, v in values.items()} for part, values in latency.items()
    }
    return {**keys, "count": count, "error_rate": round(errors / count, 4) if count else 0.0, "latency": rounded}


def _summarize_in_sql(
    samples: QuerySet[LatencySample], group: list[str], parts: tuple[str, ...]
) -> list[dict[str, Any]]:
    fractions = tuple(fraction for _, fraction in PERCENTILES)
    aggregates: dict[str, Any] = {"n": Count("id"), "errors": Count("id", filter=~Q(status=LatencySample.OK))}
    for part in parts:
        aggregates[f"{part}__percentiles"] = PercentileCont(fractions, part)  # one sort for p50, p95 and p99
    rows = (
        samples.values(*group).annotate(**aggregates).order_by(*group) if group else [samples.aggregate(**aggregates)]
    )
    names = [name for name, _ in PERCENTILES]
    return [
        _shape(
            {key: row[key] for key in group},
            row["n"],
            row["errors"],
            {part: dict(zip(names, row[f"{part}__percentiles"] or [None] * len(names), strict=True)) for part in parts},
        )
        for row in rows
        if row["n"]
    ]


def _summarize_in_python(
    samples: QuerySet[LatencySample], group: list[str], parts: tuple[str, ...]
) -> list[dict[str, Any]]:
    buckets: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for row in samples.values_list(*group, "status", *parts):
        buckets[row[: len(group)]].append(row[len(group) :])
    summaries = []
    for keys in sorted(buckets, key=lambda k: tuple(str(v) for v in k)):
        rows = buckets[keys]
        columns = list(zip(*rows, strict=True))
        errors = sum(1 for status in columns[0] if status != LatencySample.OK)
        latency = {
            part: {name: percentile([v for v in columns[1 + i] if v is not None], f) for name, f in PERCENTILES}
            for i, part in enumerate(parts)
        }
        summaries.append(_shape(dict(zip(group, keys, strict=True)), len(rows), errors, latency))
    return summaries


def metrics_cleanup(
    *,
    before: datetime,
    batch: int = 10_000,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Delete samples older than `before` in batches (short transactions on a big table); return how many.

    `on_progress` hears how many each batch deleted."""
    old = LatencySample.objects.filter(created__lt=before)
    if dry_run:
        return old.count()
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:batch]):
        done = LatencySample.objects.filter(pk__in=ids).delete()[0]
        deleted += done
        if on_progress is not None:
            on_progress(done)
    return deleted
