"""Latency summaries over a time window: count, error rate and p50/p95/p99 of every part.

Read from the rollups (metrics_app/rollups.py): percentiles are DDSketch's, within 1 % of
the exact value at their rank (metrics_app/sketches.py). `percentile` is the exact
definition (percentile_cont's) for small sets such as a baseline's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from metrics_app import rollups, sketches
from metrics_app.models import LatencySample

PARTS = rollups.PARTS
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


def percentile(values: list[float], fraction: float) -> float | None:
    """percentile_cont's definition: linear interpolation at rank fraction * (n - 1) of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def metrics_summary(
    *,
    window: timedelta,
    group: list[str],
    parts: tuple[str, ...] = PARTS,
    overall: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The window's totals, and the same per group (any of tool, provider, model), from the
    rollups (metrics_app/rollups.py): the cost grows with the groups and the minutes, not the
    calls. The window is whole minutes, ending with the open one; `since` is its start."""
    return metrics_summaries(window=window, groupings=[group], parts=parts, overall=overall, now=now)[0]


def metrics_summaries(
    *,
    window: timedelta,
    groupings: list[list[str]],
    parts: tuple[str, ...] = PARTS,
    overall: bool = True,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """`metrics_summary` for several groupings of one window, its rollups read once."""
    since, rows = rollups.window_rows(rollups.window_minutes(window), now)
    wanted = [rollups.PARTS.index(part) for part in parts]
    # Sum the rows once per (tool, provider, model); each grouping adds those sums up.
    slots: dict[tuple[str, str, str], int] = {}
    for row in rows:
        slots.setdefault((row.tool, row.provider, row.model), len(slots))
    row_slots = [slots[(row.tool, row.provider, row.model)] for row in rows]
    merged = sketches.merge_rows([row.sketch for row in rows], row_slots, len(slots), rollups.N_PARTS, wanted)
    counts = np.zeros((len(slots), 2), dtype=np.int64)
    for row, slot in zip(rows, row_slots, strict=True):
        counts[slot] += (row.count, row.errors)
    fractions = [fraction for _, fraction in PERCENTILES]
    names = [name for name, _ in PERCENTILES]

    def summarised(keys: dict[str, Any], sketch: np.ndarray, count: int, errors: int) -> dict[str, Any]:
        latency = {
            part: dict(zip(names, sketches.quantiles(sketch[position], fractions), strict=True))
            for position, part in enumerate(parts)
        }
        return _shape(keys, count, errors, latency)

    total, errors = (int(value) for value in counts.sum(axis=0)) if len(slots) else (0, 0)
    totals = summarised({}, merged.sum(axis=0), total, errors) if overall and total else _empty(parts)
    summaries = []
    for group in groupings:
        by_key: dict[tuple[Any, ...], list[int]] = {}
        for key, slot in slots.items():
            named = dict(zip(("tool", "provider", "model"), key, strict=True))
            by_key.setdefault(tuple(named[name] for name in group), []).append(slot)
        groups = [
            summarised(
                dict(zip(group, key, strict=True)),
                merged[members].sum(axis=0),
                *(int(value) for value in counts[members].sum(axis=0)),
            )
            for key, members in sorted(by_key.items(), key=lambda item: tuple(str(value) for value in item[0]))
        ]
        summaries.append(
            {"since": since.isoformat(), **totals, "groups": [g for g in groups if g["count"]] if group else []}
        )
    return summaries


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
