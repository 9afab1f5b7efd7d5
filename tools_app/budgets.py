"""Budgets: what a user may spend per day and per month, checked before every provider request.

A call that would start over its user's budget gets `budget_exceeded`, naming the period,
what was spent, what is allowed and when it resets — before any request is sent. Budgets
are set in the admin (`Budget`: a user's own, or the default for everyone); each process
reads them at most every EXAI_BUDGET_CACHE_S.

What was spent is counted as each reply's cost becomes known (tools_app/pricing.py): in
Redis in cluster mode (one counter per user and day, one per user and month, in
nano-dollars, added atomically by every process, so the check is exact across processes),
in this process otherwise. A counter starts from the spend already recorded
(`provide_spend_source`, which metrics_app plugs in: its daily spend rows), so a restart —
of the server, or of Redis — forgets nothing but the replies of the last metrics flush.
Replies of calls already running when the budget is reached still count: a budget stops
calls from starting, it never cuts an answer short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q

from tools_app.errors import ToolError
from tools_app.models import Budget
from tools_app.redis_client import get_redis, redis_key

NANO = 1_000_000_000
SpendSource = Callable[[Any, date], float]  # (user id, first day) -> US dollars spent since, recorded


class BudgetExceeded(ToolError):
    def __init__(self, *, period: str, spent_usd: float, allowed_usd: float, resets_at: datetime) -> None:
        when = resets_at.strftime("%Y-%m-%d %H:%M UTC")
        super().__init__(
            "budget_exceeded",
            f"your {period} budget of ${allowed_usd:,.4f} is spent (${spent_usd:,.4f} so far); it resets at {when}.",
        )
        self.details = {
            "period": period,
            "spent_usd": round(spent_usd, 6),
            "allowed_usd": allowed_usd,
            "resets_at": resets_at.isoformat(),
        }


@dataclass(frozen=True)
class Limits:
    daily_usd: float | None
    monthly_usd: float | None


_source: SpendSource | None = None
_limits: dict[Any, tuple[float, Limits]] = {}
_local: dict[str, int] = {}
_local_lock = threading.Lock()


def provide_spend_source(source: SpendSource) -> None:
    global _source
    _source = source


def _as_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _read_limits(user_id: Any) -> Limits:
    budgets = {budget.user_id: budget for budget in Budget.objects.filter(Q(user_id=user_id) | Q(user__isnull=True))}
    budget = budgets.get(user_id) or budgets.get(None)
    if budget is None:
        return Limits(None, None)
    return Limits(_as_float(budget.daily_usd), _as_float(budget.monthly_usd))


async def limits_for(user_id: Any) -> Limits:
    """The user's limits (their own budget, else the default), read at most every EXAI_BUDGET_CACHE_S."""
    cached = _limits.get(user_id)
    if cached is not None and time.monotonic() - cached[0] < settings.EXAI_BUDGET_CACHE_S:
        return cached[1]
    limits = await database_sync_to_async(_read_limits)(user_id)
    _limits[user_id] = (time.monotonic(), limits)
    return limits


def forget_limits() -> None:
    _limits.clear()


def _periods(now: datetime) -> list[tuple[str, str, date, datetime]]:
    """(period, its key suffix, its first day, when it resets) for today and this month, UTC."""
    today = now.astimezone(UTC).date()
    first_of_month = today.replace(day=1)
    next_month = (first_of_month + timedelta(days=32)).replace(day=1)
    tomorrow = today + timedelta(days=1)
    return [
        ("daily", today.isoformat(), today, datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)),
        (
            "monthly",
            today.strftime("%Y-%m"),
            first_of_month,
            datetime(next_month.year, next_month.month, 1, tzinfo=UTC),
        ),
    ]


def _key(user_id: Any, suffix: str) -> str:
    return redis_key("spend", str(user_id), suffix)


async def _recorded(user_id: Any, since: date) -> int:
    if _source is None:
        return 0
    return int(await database_sync_to_async(_source)(user_id, since) * NANO)


# Adds to a counter only once it exists (it is started from the recorded spend first).
_ADD = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end return 0"


async def spent(user_id: Any, now: datetime | None = None) -> dict[str, float]:
    """US dollars the user spent today and this month, counters started from the record if new."""
    periods = _periods(now or datetime.now(UTC))
    keys = [_key(user_id, suffix) for _, suffix, _, _ in periods]
    if settings.REDIS_URL:
        redis = get_redis()
        values = await redis.mget(keys)
        for index, (value, (_, _, first, resets)) in enumerate(zip(values, periods, strict=True)):
            if value is None:
                seeded = await _recorded(user_id, first)
                ttl = int((resets - datetime.now(UTC)).total_seconds()) + 3600
                await redis.set(keys[index], seeded, nx=True, ex=max(ttl, 60))
                values[index] = await redis.get(keys[index])
        return {period: int(value or 0) / NANO for (period, _, _, _), value in zip(periods, values, strict=True)}
    found = {}
    for (period, _, first, _), key in zip(periods, keys, strict=True):
        with _local_lock:
            known = _local.get(key)
        if known is None:
            seeded = await _recorded(user_id, first)
            with _local_lock:
                known = _local.setdefault(key, seeded)
        found[period] = known / NANO
    return found


async def add_spent(user_id: Any, cost_usd: float, now: datetime | None = None) -> None:
    """Count a reply's cost against its user's periods (a new period's counter starts from the
    recorded spend first: this reply is not recorded yet, so it is counted once)."""
    if user_id is None or cost_usd <= 0:
        return
    now = now or datetime.now(UTC)
    amount = round(cost_usd * NANO)
    keys = [_key(user_id, suffix) for _, suffix, _, _ in _periods(now)]
    if settings.REDIS_URL:
        redis = get_redis()
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.eval(_ADD, 1, key, amount)
            added = await pipe.execute()
        if all(added):
            return
        await spent(user_id, now)  # start the missing counters, then add to them
        async with redis.pipeline(transaction=False) as pipe:
            for key, done in zip(keys, added, strict=True):
                if not done:
                    pipe.eval(_ADD, 1, key, amount)
            await pipe.execute()
        return
    with _local_lock:
        missing = any(key not in _local for key in keys)
    if missing:
        await spent(user_id, now)
    with _local_lock:
        for key in keys:
            _local[key] += amount


async def check_budget(user_id: Any, now: datetime | None = None) -> None:
    """Raise BudgetExceeded when the user has spent their daily or monthly budget."""
    if user_id is None:
        return  # the server's own work (an investigation, a cleanup) has no budget
    limits = await limits_for(user_id)
    if limits.daily_usd is None and limits.monthly_usd is None:
        return
    now = now or datetime.now(UTC)
    so_far = await spent(user_id, now)
    for period, _, _, resets in _periods(now):
        allowed = limits.daily_usd if period == "daily" else limits.monthly_usd
        if allowed is not None and so_far[period] >= allowed:
            raise BudgetExceeded(period=period, spent_usd=so_far[period], allowed_usd=allowed, resets_at=resets)
