"""Provider concurrency that gives way on 429s and comes back step by step.

A provider that answers 429 (Moonshot's default tier allows about 50 requests a minute)
is asked less at once: its slot limit halves (never below one), then grows back by one
every EXAI_RATE_LIMIT_RECOVERY_S without another 429, up to its configured limit. Both
throttle backends read the limit on every acquire, so the change applies at once; with
Redis each process lowers its own view, and the shared pool admits no more than the
lowest limit a process asks with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings


@dataclass
class _Lowered:
    limit: int
    since: float


# Keyed by the Redis prefix too, so separate deployments (and tests) keep separate state.
_lowered: dict[tuple[str, str], _Lowered] = {}


def effective_limit(provider: str, configured: int) -> int:
    """The provider's slot limit now: the configured one, or less while it recovers from a 429."""
    key = (settings.EXAI_REDIS_PREFIX, provider)
    lowered = _lowered.get(key)
    if lowered is None:
        return configured
    steps = int((time.monotonic() - lowered.since) / settings.EXAI_RATE_LIMIT_RECOVERY_S)
    if lowered.limit + steps >= configured:
        del _lowered[key]
        return configured
    return lowered.limit + steps


def configured_provider_limit(provider: str) -> int:
    limits = {
        "kimi": settings.EXAI_KIMI_MAX_CONCURRENCY,
        "glm": settings.EXAI_GLM_MAX_CONCURRENCY,
        "local": settings.EXAI_LOCAL_MAX_CONCURRENCY,
    }
    return limits.get(provider, settings.EXAI_MAX_CONCURRENCY)


def provider_rate_limited(provider: str) -> int:
    """Halve the provider's limit after a 429; return the new limit."""
    current = effective_limit(provider, configured_provider_limit(provider))
    limit = max(1, current // 2)
    _lowered[(settings.EXAI_REDIS_PREFIX, provider)] = _Lowered(limit, time.monotonic())
    return limit
