"""Rate limits: frames per WebSocket connection, tool calls per user.

Both use GCRA (the generic cell rate algorithm): a limit of N per period lets N
through at once and then one every period/N, with no window edge where twice the
limit gets through. A refusal says how long until the next one would pass.

Frames are counted per connection, in memory. Calls are counted per user; with
REDIS_URL that count lives in Redis (one Lua script, Redis's own clock), so the
limit holds across every server process. `0` turns a limit off.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from tools_app.redis_client import LUA_NOW_MS, redis_key, redis_script


@dataclass
class RateLimited(Exception):
    """Refused by a rate limit; `retry_after_s` is when the next one would pass."""

    what: str
    retry_after_s: float

    @property
    def message(self) -> str:
        return f"rate limit: too many {self.what}; retry in {self.retry_after_s:.2f}s."


class Gcra:
    """`limit` events per `period_s`, in bursts of up to `burst` (default: the limit)."""

    def __init__(self, limit: int, period_s: float, burst: int | None = None) -> None:
        self.interval = period_s / limit if limit else 0.0
        self.tolerance = self.interval * ((burst or limit) - 1)
        self.tat = 0.0  # theoretical arrival time of the next event

    def take(self, now: float | None = None) -> float:
        """Let one event through and return 0, or refuse it and return the seconds to wait."""
        if not self.interval:
            return 0.0
        now = time.monotonic() if now is None else now
        tat = max(self.tat, now)
        wait = tat - self.tolerance - now
        if wait > 0:
            return wait
        self.tat = tat + self.interval
        return 0.0


def frame_limiter() -> Gcra:
    """A fresh limiter for one connection's inbound frames."""
    return Gcra(settings.EXAI_WS_FRAMES_PER_S, 1.0, burst=settings.EXAI_WS_FRAME_BURST)


# KEYS[1] the user's TAT (ms); ARGV interval and tolerance (ms). Returns ms to wait, 0 when let through.
# (The body also runs inside the call claim's script: tools_app/resume.py.)
GCRA_BODY = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return math.ceil(wait) end  -- Lua numbers reach the client as integers
tat = tat + interval
redis.call('SET', KEYS[1], tat, 'PX', math.ceil(tat - now) + 1000)
return 0
"""
_GCRA_SCRIPT = LUA_NOW_MS + GCRA_BODY


def _gcra_script() -> Any:
    return redis_script(_GCRA_SCRIPT)


# Users tracked in memory at most (least recently seen dropped first: their limiter is idle anyway).
_MAX_LOCAL_USERS = 10_000
_local_users: OrderedDict[object, Gcra] = OrderedDict()


# A call whose count was already taken on its way in (in the script that claimed it, so a
# /ws call pays one Redis round trip for both): the milliseconds it was told to wait.
counted_ms: contextvars.ContextVar[float | None] = contextvars.ContextVar("counted_ms", default=None)


def user_call_rate(user_id: object) -> tuple[str, list[float]] | None:
    """The user's call count in Redis for GCRA_BODY: (key, [interval ms, tolerance ms]); None when off."""
    limit = settings.EXAI_USER_CALLS_PER_MIN
    if not limit:
        return None
    interval_ms = 60_000 / limit
    return redis_key("rate", "calls", user_id), [interval_ms, interval_ms * (limit - 1)]


async def user_call_admit(user_id: object) -> None:
    """Count one tool call against its user's EXAI_USER_CALLS_PER_MIN; raise RateLimited when over."""
    limit = settings.EXAI_USER_CALLS_PER_MIN
    if not limit:
        return
    counted = counted_ms.get()
    if counted is not None:
        counted_ms.set(None)
        wait_s = counted / 1000
    elif settings.REDIS_URL:
        key, args = user_call_rate(user_id) or ("", [])
        waited_ms = await _gcra_script()(keys=[key], args=args)
        wait_s = float(waited_ms) / 1000
    else:
        limiter = _local_users.get(user_id)
        if limiter is None or limiter.interval != 60 / limit:
            limiter = _local_users[user_id] = Gcra(limit, 60.0)
        _local_users.move_to_end(user_id)
        while len(_local_users) > _MAX_LOCAL_USERS:
            _local_users.popitem(last=False)
        wait_s = limiter.take()
    if wait_s > 0:
        raise RateLimited(f"tool calls (over {limit} a minute)", math.ceil(wait_s * 100) / 100)


def reset_local() -> None:
    """Forget every in-process user count (tests, and a server whose limit setting changed)."""
    _local_users.clear()
