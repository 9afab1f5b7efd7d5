"""Rollups: each minute's and hour's samples summed per group as they are written, so reading
a window costs its groups and minutes, not its calls.

- The sample writer (metrics_app/recorder.py) calls `write_samples`: the raw rows (kept for
  drill-down) and their rollups are written in one transaction, both or neither, so a batch
  retried after an outage is counted once. Rollup rows are merged under row locks, so any
  number of server processes may write the same minute at once (on PostgreSQL; SQLite
  serialises its writers itself).
- Two grains: per (tool, provider, model) — summaries merge these into any grouping — and
  per provider, for the dashboard's per-minute charts (their sketch holds total latency
  only). Two spans: minutes and hours (a long window reads its whole hours from hour rows).
- The last hour and the last day are kept summed as sliding windows (`RollupWindow`): a
  summary over either reads one row per group plus the open minute's rows. The first
  reader after a minute turns advances it (adds the minute that closed, subtracts the one
  that left); a sample written late into a minute already summed is added to the window by
  its writer (the writer holds the window's row in share mode, the advancer in update mode,
  so each late sample is counted exactly once).
- `rebuild_rollups` recomputes them from the raw samples (it excludes writers meanwhile).

Windows are whole minutes: "the last hour" is the minute now is in and the 59 before it;
the summary's `since` says where it starts. Percentiles are DDSketch's (1 % relative error).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from exai_site.outages import unreachable_service
from metrics_app import sketches
from metrics_app.models import LatencyRollup, LatencySample, RollupWindow, RollupWindowGroup, SpendDaily
from metrics_app.races import ATTEMPTS, lost_race
from metrics_app.spend import add_to_spend

logger = logging.getLogger(__name__)

PARTS = ("total_latency_ms", "global_sem_wait_ms", "provider_sem_wait_ms", "processing_ms", "ttft_ms", "overhead_ms")
N_PARTS = len(PARTS)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
# Sliding windows kept summed, in minutes: the dashboard's and the summary's usual ones.
WINDOWS = (60, 1440)
# PostgreSQL advisory lock: writers take it shared, a rebuild exclusive.
_LOCK_KEY = 0x45584149  # "EXAI"

Key = tuple[str, str, str]  # tool, provider, model


def floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


@dataclass
class Delta:
    """What some samples add to one rollup row: counts, and their sketch bins kept sparse
    (`bins` holds part * BINS + bin, `weights` how many; repeated bins add up)."""

    count: int = 0
    errors: int = 0
    wait_sum_ms: float = 0.0
    wait_max_ms: float = 0.0
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, other: Delta, sign: int = 1) -> None:
        self.count += sign * other.count
        self.errors += sign * other.errors
        self.wait_sum_ms += sign * other.wait_sum_ms
        self.wait_max_ms = max(self.wait_max_ms, other.wait_max_ms)
        self.bins = np.concatenate([self.bins, other.bins])
        self.weights = np.concatenate([self.weights, sign * other.weights])

    def dense(self) -> np.ndarray:
        """The bins' counts, shaped (parts, BINS)."""
        flat = np.bincount(self.bins, weights=self.weights, minlength=N_PARTS * sketches.BINS)
        return np.rint(flat).astype(np.int64).reshape(N_PARTS, sketches.BINS)

    @classmethod
    def of_dense(cls, parts: np.ndarray, count: int = 0, errors: int = 0) -> Delta:
        flat = np.asarray(parts, dtype=np.int64).reshape(-1)
        found = np.flatnonzero(flat)
        return cls(count=count, errors=errors, bins=found, weights=flat[found])


def _postgres() -> bool:
    return connection.vendor == "postgresql"


class MetricsTablesBusy(Exception):
    """Another transaction holds a metrics table exclusively (a migration, a TRUNCATE)."""


def _lock_tables(*models: Any) -> None:
    """Take the tables this transaction writes, all at once and without waiting.

    Writers and readers only ever take ROW EXCLUSIVE, which never conflict with one another;
    what does is a schema change or a TRUNCATE, which locks the tables one by one. Taking
    ours one by one as the transaction goes would deadlock with it (each holding one table
    the other waits for), so they are taken first, together, or not at all (MetricsTablesBusy)."""
    if not _postgres():
        return
    tables = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in models)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN ROW EXCLUSIVE MODE NOWAIT")
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
            raise MetricsTablesBusy(str(exc)) from exc
        raise


_TABLES = (LatencySample, LatencyRollup, RollupWindow, RollupWindowGroup, SpendDaily)


def _advisory_lock(*, exclusive: bool) -> None:
    if _postgres():
        with connection.cursor() as cursor:
            function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            cursor.execute(f"SELECT {function}(%s)", [_LOCK_KEY])


# --- writing ---------------------------------------------------------------------------------


RECORD_FIELDS = ("tool", "provider", "model", "status", "created", *PARTS)
Record = tuple[Any, ...]  # a sample's RECORD_FIELDS, `created` as seconds since the epoch


def records_of(samples: Sequence[LatencySample]) -> list[Record]:
    return [
        (s.tool, s.provider, s.model, s.status, s.created.timestamp(), *(getattr(s, part) for part in PARTS))
        for s in samples
    ]


def write_samples(samples: Sequence[LatencySample]) -> None:
    """Write raw samples and add them to the rollups, in one transaction.

    The same transaction adds them to the day's spend (metrics_app/spend.py). Should the
    rollups refuse them for any reason but an outage (which fails the whole batch,
    kept for the next flush), the raw samples are still written and the error logged:
    `rebuild_rollups` recomputes the rollups from them."""
    with transaction.atomic():
        _lock_tables(*_TABLES)
        _advisory_lock(exclusive=False)
        LatencySample.objects.bulk_create(samples, batch_size=settings.EXAI_METRICS_BATCH)
        try:
            with transaction.atomic():
                add_to_rollups(records_of(samples))
                add_to_spend(samples)
        except Exception as exc:
            if unreachable_service(exc) is not None:
                raise
            logger.error(
                "could not add %d latency samples to the rollups; they are kept as raw samples "
                "(manage.py rebuild_rollups recomputes the rollups from them)",
                len(samples),
                exc_info=True,
            )


def deltas_of(records: Sequence[Record]) -> dict[tuple[str, int, datetime, str, str, str], Delta]:
    """Each rollup row's share of these samples: (grain, span_s, start, tool, provider, model)
    -> Delta. Vectorised: a batch of 50,000 samples is a few numpy passes, not a loop per bin."""
    if not records:
        return {}
    n = len(records)
    values = np.array([record[5:] for record in records], dtype=np.float64)  # None becomes NaN
    present = ~np.isnan(values)
    flat_bins = np.arange(N_PARTS, dtype=np.int64) * sketches.BINS + sketches.bin_indexes(np.nan_to_num(values))
    waits = np.nan_to_num(values[:, 1]) + np.nan_to_num(values[:, 2])
    errors = np.fromiter((record[3] != LatencySample.OK for record in records), dtype=np.float64, count=n)
    minute_of = np.floor(np.fromiter((record[4] for record in records), dtype=np.float64, count=n) / 60).astype(
        np.int64
    )
    groups: dict[Key, int] = {}
    group_of = np.fromiter(
        (groups.setdefault((record[0], record[1], record[2]), len(groups)) for record in records),
        dtype=np.int64,
        count=n,
    )
    providers: dict[Key, int] = {}
    provider_of = np.fromiter(
        (providers.setdefault(("", record[1], ""), len(providers)) for record in records), dtype=np.int64, count=n
    )
    deltas: dict[tuple[str, int, datetime, str, str, str], Delta] = {}
    width = N_PARTS * sketches.BINS
    for grain, codes, names in (
        (LatencyRollup.Grain.GROUP, group_of, list(groups)),
        (LatencyRollup.Grain.PROVIDER, provider_of, list(providers)),
    ):
        for span_s in (LatencyRollup.MINUTE, LatencyRollup.HOUR):
            slot_of = minute_of // (span_s // 60)
            first = int(slot_of.min())
            keys, labels = np.unique(codes * (int(slot_of.max()) - first + 1) + (slot_of - first), return_inverse=True)
            span_count = int(slot_of.max()) - first + 1
            size = len(keys)
            counts = np.bincount(labels, minlength=size)
            error_counts = np.bincount(labels, weights=errors, minlength=size)
            wait_sums = np.bincount(labels, weights=waits, minlength=size)
            wait_maxes = np.zeros(size)
            np.maximum.at(wait_maxes, labels, waits)
            # Per-provider rows feed the dashboard's p95 chart alone: total latency only.
            kept = present if grain == LatencyRollup.Grain.GROUP else present & (np.arange(N_PARTS) == 0)
            bins, weights = np.unique((labels[:, None] * width + flat_bins)[kept], return_counts=True)
            bounds = np.searchsorted(bins, np.arange(size + 1) * width)
            for label in range(size):
                code, slot = divmod(int(keys[label]), span_count)
                start = datetime.fromtimestamp((first + slot) * span_s, tz=UTC)
                low, high = bounds[label], bounds[label + 1]
                deltas[(grain, span_s, start, *names[code])] = Delta(
                    count=int(counts[label]),
                    errors=int(error_counts[label]),
                    wait_sum_ms=float(wait_sums[label]),
                    wait_max_ms=float(wait_maxes[label]),
                    bins=bins[low:high] - label * width,
                    weights=weights[low:high].astype(np.int64),
                )
    return deltas


def add_to_rollups(records: Sequence[Record]) -> None:
    """Merge the samples into their minute and hour rows, and into any sliding window that
    already summed their minute (samples written late). Call inside a transaction."""
    deltas = deltas_of(records)
    if not deltas:
        return
    _merge_rows(deltas)
    late: dict[datetime, dict[Key, Delta]] = defaultdict(dict)
    for (grain, span_s, start, tool, provider, model), delta in deltas.items():
        if grain == LatencyRollup.Grain.GROUP and span_s == LatencyRollup.MINUTE:
            late[start][(tool, provider, model)] = delta
    _add_late_minutes(late)


def _merge_rows(deltas: dict[tuple[str, int, datetime, str, str, str], Delta]) -> None:
    starts = {key[2] for key in deltas}
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():  # a savepoint: a lost race for a row is tried again (races.py)
                rows = (
                    LatencyRollup.objects.select_for_update()
                    .filter(start__in=starts)
                    .order_by("grain", "span_s", "start", "tool", "provider", "model")
                )
                existing = {(r.grain, r.span_s, r.start, r.tool, r.provider, r.model): r for r in rows}
                created, updated = [], []
                for key, delta in deltas.items():
                    row = existing.get(key)
                    if row is None:
                        grain, span_s, start, tool, provider, model = key
                        created.append(
                            LatencyRollup(
                                grain=grain,
                                span_s=span_s,
                                start=start,
                                tool=tool,
                                provider=provider,
                                model=model,
                                count=delta.count,
                                errors=delta.errors,
                                wait_sum_ms=delta.wait_sum_ms,
                                wait_max_ms=delta.wait_max_ms,
                                sketch=sketches.encode(delta.dense()),
                            )
                        )
                        continue
                    parts = sketches.decode(bytes(row.sketch), N_PARTS) + delta.dense()
                    row.count += delta.count
                    row.errors += delta.errors
                    row.wait_sum_ms += delta.wait_sum_ms
                    row.wait_max_ms = max(row.wait_max_ms, delta.wait_max_ms)
                    row.sketch = sketches.encode(parts)
                    updated.append(row)
                LatencyRollup.objects.bulk_create(created)
                _update_rows(LatencyRollup, updated, ["count", "errors", "wait_sum_ms", "wait_max_ms", "sketch"])
            return
        except (IntegrityError, OperationalError) as exc:
            if attempt == ATTEMPTS - 1 or not lost_race(exc):
                raise


def _update_rows(model: Any, rows: Sequence[Any], fields: list[str], batch: int = 100) -> None:
    """Write these fields of many rows in one UPDATE ... FROM (VALUES ...) per batch: Django's
    bulk_update builds a CASE per field and row, which cost most of a flush."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    assignments = ", ".join(f"{quote(name)} = v.column{index + 2}" for index, name in enumerate(fields))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            values = ", ".join(["(" + ", ".join(["%s"] * (len(fields) + 1)) + ")"] * len(chunk))
            params = [value for row in chunk for value in (row.pk, *(getattr(row, name) for name in fields))]
            sql = f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v WHERE {table}.id = v.column1"
            cursor.execute(sql, params)


def _window_span(window: RollupWindow) -> tuple[datetime, datetime] | None:
    """The closed minutes a window holds: (first, through), both included; None when empty."""
    if window.through is None:
        return None
    return window.through - (window.minutes - 2) * MINUTE, window.through


def _add_late_minutes(late: dict[datetime, dict[Key, Delta]]) -> None:
    if _postgres():
        with connection.cursor() as cursor:
            # Share mode: writers pass each other, an advancing reader (update mode) waits for them.
            cursor.execute(f"SELECT id FROM {RollupWindow._meta.db_table} ORDER BY id FOR SHARE")
    for window in RollupWindow.objects.order_by("id"):
        span = _window_span(window)
        if span is None:
            continue
        inside = [minute for minute in late if span[0] <= minute <= span[1]]
        if not inside:
            continue
        change: dict[Key, Delta] = defaultdict(Delta)
        for minute in inside:
            for key, delta in late[minute].items():
                change[key].add(delta)
        _apply_to_window(window, change)


def _apply_to_window(window: RollupWindow, change: dict[Key, Delta]) -> None:
    """Add per-group changes (negative for minutes leaving) to a window's rows, under their row locks."""
    if not change:
        return
    keys = Q()
    for tool, provider, model in change:
        keys |= Q(tool=tool, provider=provider, model=model)
    rows = {
        (row.tool, row.provider, row.model): row
        for row in RollupWindowGroup.objects.select_for_update()
        .filter(keys, window=window)
        .order_by("tool", "provider", "model")
    }
    created, updated, emptied = [], [], []
    for key, delta in change.items():
        row = rows.get(key)
        if row is None:
            if delta.count <= 0:
                continue
            created.append(
                RollupWindowGroup(
                    window=window,
                    tool=key[0],
                    provider=key[1],
                    model=key[2],
                    count=delta.count,
                    errors=delta.errors,
                    sketch=sketches.encode(delta.dense()),
                )
            )
            continue
        parts = sketches.decode(bytes(row.sketch), N_PARTS) + delta.dense()
        row.count += delta.count
        row.errors += delta.errors
        if row.count <= 0:
            emptied.append(row.pk)
            continue
        row.sketch = sketches.encode(np.maximum(parts, 0))
        updated.append(row)
    RollupWindowGroup.objects.bulk_create(created)
    _update_rows(RollupWindowGroup, updated, ["count", "errors", "sketch"])
    RollupWindowGroup.objects.filter(pk__in=emptied).delete()


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Row:
    """A summed group as a reader gets it: its keys, counts and encoded sketch."""

    tool: str
    provider: str
    model: str
    count: int
    errors: int
    sketch: bytes


def _group_rows(first: datetime, last: datetime) -> list[Row]:
    """The (tool, provider, model) rows covering minutes first..last (both included): whole
    hours from hour rows, the rest from minute rows."""
    grain = LatencyRollup.Grain.GROUP
    whole_from = floor_hour(first) if first == floor_hour(first) else floor_hour(first) + HOUR
    whole_to = floor_hour(last + MINUTE)  # hours ending at or before the end of `last`
    selection = Q(grain=grain, span_s=LatencyRollup.MINUTE, start__gte=first, start__lte=last)
    if whole_from < whole_to:
        selection = (
            Q(grain=grain, span_s=LatencyRollup.HOUR, start__gte=whole_from, start__lt=whole_to)
            | Q(grain=grain, span_s=LatencyRollup.MINUTE, start__gte=first, start__lt=whole_from)
            | Q(grain=grain, span_s=LatencyRollup.MINUTE, start__gte=whole_to, start__lte=last)
        )
    return [
        Row(tool, provider, model, count, errors, bytes(sketch))
        for tool, provider, model, count, errors, sketch in LatencyRollup.objects.filter(selection).values_list(
            "tool", "provider", "model", "count", "errors", "sketch"
        )
    ]


def _sum_by_group(rows: Iterable[Row]) -> dict[Key, Delta]:
    rows = list(rows)
    slots: dict[Key, int] = {}
    for row in rows:
        slots.setdefault((row.tool, row.provider, row.model), len(slots))
    merged = sketches.merge_rows(
        [row.sketch for row in rows], [slots[(r.tool, r.provider, r.model)] for r in rows], len(slots), N_PARTS
    )
    sums = {key: Delta.of_dense(merged[slot]) for key, slot in slots.items()}
    for row in rows:
        delta = sums[(row.tool, row.provider, row.model)]
        delta.count += row.count
        delta.errors += row.errors
    return sums


def advance(minutes: int, now: datetime | None = None) -> RollupWindow:
    """Bring the sliding window of `minutes` up to the last closed minute, and return it."""
    target = floor_minute(now or timezone.now()) - MINUTE
    window = RollupWindow.objects.filter(minutes=minutes).first()
    if window is not None and window.through == target:
        return window  # the common case: nothing to do, no lock taken
    with transaction.atomic():
        _lock_tables(*_TABLES)
        try:
            with transaction.atomic():
                RollupWindow.objects.get_or_create(minutes=minutes)
        except IntegrityError:
            pass  # another reader made it first
        window = RollupWindow.objects.select_for_update().get(minutes=minutes)
        if window.through == target:
            return window
        old = _window_span(window)
        first = target - (minutes - 2) * MINUTE
        if old is None or old[1] < first or old[1] > target:
            # Nothing of the old sums is kept (new, idle for longer than the window, or ahead).
            RollupWindowGroup.objects.filter(window=window).delete()
            _apply_to_window(window, _sum_by_group(_group_rows(first, target)))
        else:
            change = _sum_by_group(_group_rows(old[1] + MINUTE, target))
            if old[0] < first:  # the minutes that left the window
                for key, leaving in _sum_by_group(_group_rows(old[0], first - MINUTE)).items():
                    change.setdefault(key, Delta()).add(leaving, sign=-1)
            _apply_to_window(window, change)
        window.through = target
        window.save(update_fields=["through"])
    return window


def window_rows(minutes: int, now: datetime | None = None) -> tuple[datetime, list[Row]]:
    """The group rows that sum the last `minutes` minutes (the open one included), and where
    that window starts."""
    now = now or timezone.now()
    current = floor_minute(now)
    since = current - (minutes - 1) * MINUTE
    open_minute = _group_rows(current, current)
    if minutes in WINDOWS:
        try:
            window = advance(minutes, now)
        except MetricsTablesBusy:  # summed from the rows instead, this once
            return since, _group_rows(since, current - MINUTE) + open_minute
        kept = [
            Row(tool, provider, model, count, errors, bytes(sketch))
            for tool, provider, model, count, errors, sketch in RollupWindowGroup.objects.filter(
                window=window
            ).values_list("tool", "provider", "model", "count", "errors", "sketch")
        ]
        return since, kept + open_minute
    if minutes == 1:
        return since, open_minute
    return since, _group_rows(since, current - MINUTE) + open_minute


def provider_minutes(first: datetime, last: datetime, *, span_s: int = LatencyRollup.MINUTE) -> list[LatencyRollup]:
    """The per-provider rows of a range (the dashboard's charts)."""
    return list(
        LatencyRollup.objects.filter(
            grain=LatencyRollup.Grain.PROVIDER, span_s=span_s, start__gte=first, start__lte=last
        ).order_by("start", "provider")
    )


def window_minutes(window: timedelta) -> int:
    return max(1, math.ceil(window.total_seconds() / 60))


# --- rebuilding and trimming ------------------------------------------------------------------


def rebuild_rollups(*, since: datetime, chunk: int = 50_000, on_progress: Any = None) -> int:
    """Recompute every rollup from `since` (to the minute) from the raw samples; return how
    many samples were read. Writers wait meanwhile; the sliding windows start afresh."""
    since = floor_hour(since)
    read = 0
    with transaction.atomic():
        _advisory_lock(exclusive=True)
        LatencyRollup.objects.filter(start__gte=since).delete()
        RollupWindow.objects.update(through=None)
        RollupWindowGroup.objects.all().delete()
        # `created` as seconds since the epoch, read by the database (no datetime per row).
        epoch = "EXTRACT(EPOCH FROM created)" if _postgres() else "(julianday(created) - 2440587.5) * 86400.0"
        columns = ", ".join(epoch if name == "created" else connection.ops.quote_name(name) for name in RECORD_FIELDS)
        query = f"SELECT {columns} FROM {LatencySample._meta.db_table} WHERE created >= %s ORDER BY created"
        with connection.chunked_cursor() as cursor:  # a server-side cursor on PostgreSQL
            cursor.execute(query, [since])
            while batch := cursor.fetchmany(chunk):
                add_to_rollups([(*row[:4], float(row[4]), *row[5:]) for row in batch])
                read += len(batch)
                if on_progress is not None:
                    on_progress(len(batch))
    return read


def rollups_cleanup(*, before: datetime, dry_run: bool = False) -> int:
    """Delete rollup rows that start before `before`; return how many."""
    old = LatencyRollup.objects.filter(start__lt=before)
    if dry_run:
        return old.count()
    return old.delete()[0]
