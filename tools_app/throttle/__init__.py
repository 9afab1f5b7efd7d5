"""Provider-call slots: per user, then global, then the call's provider; always given back.

With REDIS_URL the limits hold for every server process sharing that Redis
(`redis.py`); without it they hold for this process (`local.py`).
"""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings

from tools_app.throttle.base import Overloaded, Pool, SlotWaits, Throttle

__all__ = ["Overloaded", "Pool", "SlotWaits", "Throttle", "get_throttle"]

# Both backends hold loop-bound asyncio and redis.asyncio objects: one throttle per event loop.
_throttles: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Throttle] = weakref.WeakKeyDictionary()


def get_throttle() -> Throttle:
    loop = asyncio.get_running_loop()
    throttle = _throttles.get(loop)
    if throttle is None:
        if settings.REDIS_URL:
            from tools_app.throttle.redis import RedisThrottle

            throttle = RedisThrottle()
        else:
            from tools_app.throttle.local import LocalThrottle

            throttle = LocalThrottle()
        _throttles[loop] = throttle
    return throttle
