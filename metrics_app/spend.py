"""Spend: what calls cost per user, tool, model and day, summed as the samples are written.

The sample writer adds each batch to `SpendDaily` rows in the same transaction as the raw
samples and the latency rollups (metrics_app/rollups.py), under the same row locks, so any
number of processes count every call once. Costs come from the price table
(tools_app/pricing.py); a call with a model that has no price counts its tokens and as
`unpriced_calls`, never as a made-up cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Q, Sum

from metrics_app.models import LatencySample, SpendDaily
from metrics_app.races import ATTEMPTS, lost_race

GROUPS = ("user", "tool", "provider", "model", "day")
_COUNTERS = ("calls", "tokens_in", "cached_tokens", "tokens_out", "reasoning_tokens", "cost_usd", "unpriced_calls")


def _key(sample: LatencySample) -> tuple[date, int, str, str, str]:
    day = sample.created.astimezone(UTC).date()
    return day, sample.user_id or 0, sample.tool, sample.provider, sample.model


def add_to_spend(samples: Sequence[LatencySample]) -> None:
    """Add the samples' calls, tokens and costs to their days' rows (inside the writer's transaction)."""
    sums: dict[tuple[date, int, str, str, str], dict[str, float]] = defaultdict(lambda: dict.fromkeys(_COUNTERS, 0))
    for sample in samples:
        if not (sample.tokens_in or sample.tokens_out or sample.cost_usd):
            continue  # no provider reply: nothing was spent (a refused call, a status tool)
        counts = sums[_key(sample)]
        counts["calls"] += 1
        counts["tokens_in"] += sample.tokens_in
        counts["cached_tokens"] += sample.cached_tokens
        counts["tokens_out"] += sample.tokens_out
        counts["reasoning_tokens"] += sample.reasoning_tokens
        if sample.cost_usd is None:
            counts["unpriced_calls"] += 1
        else:
            counts["cost_usd"] += sample.cost_usd
    if not sums:
        return
    selection = Q()
    for day, user_id, tool, provider, model in sums:
        selection |= Q(day=day, user_id=user_id, tool=tool, provider=provider, model=model)
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():  # a savepoint: a lost race for a row is tried again (races.py)
                existing = {
                    (r.day, r.user_id, r.tool, r.provider, r.model): r
                    for r in SpendDaily.objects.select_for_update()
                    .filter(selection)
                    .order_by("day", "user_id", "tool", "provider", "model")
                }
                created: list[SpendDaily] = []
                updated: list[SpendDaily] = []
                for key, added in sums.items():
                    found = existing.get(key)
                    if found is None:
                        day, user_id, tool, provider, model = key
                        created.append(
                            SpendDaily(day=day, user_id=user_id, tool=tool, provider=provider, model=model, **added)
                        )
                        continue
                    for name, value in added.items():
                        setattr(found, name, getattr(found, name) + value)
                    updated.append(found)
                SpendDaily.objects.bulk_create(created)
                if updated:
                    SpendDaily.objects.bulk_update(updated, list(_COUNTERS))
            return
        except (IntegrityError, OperationalError) as exc:
            if attempt == ATTEMPTS - 1 or not lost_race(exc):
                raise


def spend_summary(
    *, days: int, group: list[str], user_id: int | None = None, today: date | None = None
) -> dict[str, Any]:
    """Calls, tokens and cost over the last `days` days (today included, UTC), in total and per
    group (any of user, tool, provider, model, day); only `user_id`'s when one is given."""
    today = today or datetime.now(UTC).date()
    since = today - timedelta(days=days - 1)
    rows = SpendDaily.objects.filter(day__gte=since, day__lte=today)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    columns = {"user": "user_id", "tool": "tool", "provider": "provider", "model": "model", "day": "day"}
    sums = {name: Sum(name) for name in _COUNTERS}

    def shaped(row: dict[str, Any]) -> dict[str, Any]:
        counts = {name: row.get(name) or 0 for name in _COUNTERS}
        counts["cost_usd"] = round(counts["cost_usd"], 8)
        return counts

    total = shaped(rows.aggregate(**sums))
    groups = []
    if group:
        fields = [columns[name] for name in group]
        for row in rows.values(*fields).annotate(**sums).order_by(*fields):
            keys = {name: row[columns[name]] for name in group}
            if "day" in keys:
                keys["day"] = keys["day"].isoformat()
            groups.append({**keys, **shaped(row)})
    return {"since": since.isoformat(), "until": today.isoformat(), **total, "groups": groups}


def spent_since(user_id: Any, since: date) -> float:
    """US dollars the user's priced calls cost from `since` (UTC day) on, as recorded."""
    return (
        SpendDaily.objects.filter(user_id=user_id or 0, day__gte=since).aggregate(total=Sum("cost_usd"))["total"] or 0.0
    )
