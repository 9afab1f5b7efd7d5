"""A circuit breaker per provider: fail fast while a provider is failing, probe before trusting it.

closed     calls flow; each call's outcome is counted in a sliding window
open       after more than EXAI_CIRCUIT_FAILURE_RATIO of the window's calls failed (with at
           least EXAI_CIRCUIT_MIN_CALLS calls, so never on the very first one), or at once on an
           authentication error; calls fail fast with `provider_unavailable` for
           EXAI_CIRCUIT_COOLDOWN_S, or the provider's Retry-After if longer
half-open  after the cooldown one call is let through as a probe; its success closes the
           circuit, its failure opens it again

With REDIS_URL the state is shared by every server process (one Lua script per
transition, on Redis's clock); without it, it is this process's.
"""

from __future__ import annotations

import abc
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from exai_site.outages import now_or_later
from tools_app.providers.base import ProviderError
from tools_app.redis_client import LUA_NOW_MS, redis_key, redis_script

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class Admission:
    allowed: bool
    probe: bool = False
    retry_in_s: float = 0.0


def counts_as_failure(error: ProviderError) -> bool:
    """Provider trouble counts; a request the provider rightly refused (400, 404, 422) does not,
    nor a rate limit (429): it is waited out and lowers the provider's concurrency instead."""
    if error.status == 429:
        return False
    return error.code == "timeout" or error.retryable or error.status in (401, 403)


def trips_at_once(error: ProviderError) -> bool:
    return error.status in (401, 403)


def _params() -> dict[str, float]:
    return {
        "window_ms": settings.EXAI_CIRCUIT_WINDOW_S * 1000,
        "min_calls": settings.EXAI_CIRCUIT_MIN_CALLS,
        "ratio": settings.EXAI_CIRCUIT_FAILURE_RATIO,
        "cooldown_ms": settings.EXAI_CIRCUIT_COOLDOWN_S * 1000,
    }


def refusal(label: str, retry_in_s: float) -> ProviderError:
    return ProviderError(
        f"{label} is failing; its circuit is open, retry in {retry_in_s:.1f}s.",
        code="provider_unavailable",
        retryable=True,
        retry_after_s=retry_in_s,
    )


@dataclass
class Passage:
    """One provider request through its breaker: admitted on the way in (perhaps as the
    half-open probe), its outcome counted on the way out once `finish`ed. A request that
    never finished (cancelled) is not counted."""

    provider: str
    label: str
    probe_ttl_ms: int
    probe: bool = False
    finished: bool = False
    error: ProviderError | None = None
    # A Redis key to set (for `mark_ttl_ms`) on the way out when the request succeeded: the
    # throttle's script sets it in the same round trip (tools_app/turns.py's thread marker).
    mark: str | None = None
    mark_ttl_ms: int = 0
    marked: bool = False

    def finish(self, error: ProviderError | None) -> None:
        self.finished, self.error = True, error

    def outcome(self) -> tuple[bool, bool, int]:
        """(failed, trips at once, the provider's retry-after in ms) for the record."""
        error = self.error
        if error is None:
            return False, False, 0
        return counts_as_failure(error), trips_at_once(error), int((error.retry_after_s or 0) * 1000)


class CircuitBreaker(abc.ABC):
    async def admit(self, provider: str, label: str, probe_ttl_s: float) -> Admission:
        admission = await self._admit(provider, int(probe_ttl_s * 1000))
        if not admission.allowed:
            raise refusal(label, admission.retry_in_s)
        return admission

    async def record(self, provider: str, error: ProviderError | None, *, probe: bool) -> None:
        failed = error is not None and counts_as_failure(error)
        at_once = error is not None and trips_at_once(error)
        retry_after_ms = int((error.retry_after_s or 0) * 1000) if error is not None else 0
        await self._record(provider, failed=failed, at_once=at_once, retry_after_ms=retry_after_ms, probe=probe)

    async def enter(self, passage: Passage) -> None:
        """Admit the request (raise `provider_unavailable` while the circuit is open)."""
        admission = await self.admit(passage.provider, passage.label, passage.probe_ttl_ms / 1000)
        passage.probe = admission.probe

    async def leave(self, passage: Passage) -> None:
        """Count a finished request's outcome; with Redis down, later (the answer is not held up)."""
        if passage.finished:
            await now_or_later(
                f"count a {passage.provider} call in its circuit breaker",
                lambda: self.record(passage.provider, passage.error, probe=passage.probe),
            )

    @abc.abstractmethod
    async def _admit(self, provider: str, probe_ttl_ms: int) -> Admission: ...

    @abc.abstractmethod
    async def _record(
        self, provider: str, *, failed: bool, at_once: bool, retry_after_ms: int, probe: bool
    ) -> None: ...

    @abc.abstractmethod
    async def snapshot(self, providers: list[str]) -> dict[str, dict[str, Any]]: ...


@dataclass
class _State:
    state: str = CLOSED
    open_until: float = 0.0
    probe_until: float = 0.0
    calls: list[float] | None = None
    failures: list[float] | None = None


class LocalCircuitBreaker(CircuitBreaker):
    def __init__(self) -> None:
        # Keyed by the Redis prefix too, so separate deployments (and tests) keep separate state.
        self._states: dict[tuple[str, str], _State] = {}

    def _state(self, provider: str) -> _State:
        key = (settings.EXAI_REDIS_PREFIX, provider)
        if key not in self._states:
            self._states[key] = _State(calls=[], failures=[])
        return self._states[key]

    async def _admit(self, provider: str, probe_ttl_ms: int) -> Admission:
        state, now = self._state(provider), time.monotonic() * 1000
        if state.state == CLOSED:
            return Admission(True)
        if state.state == OPEN and now < state.open_until:
            return Admission(False, retry_in_s=(state.open_until - now) / 1000)
        if state.state == HALF_OPEN and now < state.probe_until:
            return Admission(False, retry_in_s=(state.probe_until - now) / 1000)
        state.state, state.probe_until = HALF_OPEN, now + probe_ttl_ms
        return Admission(True, probe=True)

    async def _record(self, provider: str, *, failed: bool, at_once: bool, retry_after_ms: int, probe: bool) -> None:
        state, now, params = self._state(provider), time.monotonic() * 1000, _params()
        assert state.calls is not None and state.failures is not None
        horizon = now - params["window_ms"]
        state.calls = [t for t in state.calls if t > horizon] + [now]
        state.failures = [t for t in state.failures if t > horizon] + ([now] if failed else [])
        if failed:
            calls, failures = len(state.calls), len(state.failures)
            too_many = calls >= params["min_calls"] and failures / calls > params["ratio"]
            if at_once or too_many or state.state == HALF_OPEN:
                state.state = OPEN
                state.open_until = now + max(params["cooldown_ms"], retry_after_ms)
        elif probe or state.state == HALF_OPEN:
            state.state, state.failures = CLOSED, []

    async def snapshot(self, providers: list[str]) -> dict[str, dict[str, Any]]:
        now = time.monotonic() * 1000
        result = {}
        for provider in providers:
            state = self._state(provider)
            retry = state.open_until - now if state.state == OPEN else 0.0
            result[provider] = {
                "state": state.state if not (state.state == OPEN and retry <= 0) else HALF_OPEN,
                "calls": len(state.calls or []),
                "failures": len(state.failures or []),
                "retry_in_s": round(max(0.0, retry) / 1000, 3),
            }
        return result


# KEYS: state hash   ARGV: probe ttl ms   ->  {allowed, probe, retry_in_ms}
# (The bodies also run inside the throttle's scripts, as functions of KEYS and ARGV: one round
# trip admits and takes the slots, one gives them back and counts the outcome.)
ADMIT_BODY = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return {1, 0, 0} end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or 0)
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or 0)
if state == 'open' and now < open_until then return {0, 0, open_until - now} end
if state == 'half_open' and now < probe_until then return {0, 0, probe_until - now} end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[1]))
return {1, 1, 0}
"""
ADMIT = LUA_NOW_MS + ADMIT_BODY

# KEYS: state hash, calls zset, failures zset
# ARGV: member, failed, at_once, retry_after_ms, probe, window_ms, min_calls, ratio, cooldown_ms
RECORD_BODY = """
local window = tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], now, ARGV[1])
if ARGV[2] == '1' then redis.call('ZADD', KEYS[3], now, ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], window * 2) end
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[2] == '1' then
  local calls = redis.call('ZCARD', KEYS[2])
  local failures = redis.call('ZCARD', KEYS[3])
  local too_many = calls >= tonumber(ARGV[7]) and failures / calls > tonumber(ARGV[8])
  if ARGV[3] == '1' or too_many or state == 'half_open' then
    local cooldown = math.max(tonumber(ARGV[9]), tonumber(ARGV[4]))
    redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + cooldown)
  end
elseif ARGV[5] == '1' or state == 'half_open' then
  redis.call('HSET', KEYS[1], 'state', 'closed')
  redis.call('DEL', KEYS[3])
end
return 1
"""
RECORD = LUA_NOW_MS + RECORD_BODY

# KEYS: state hash, calls zset, failures zset   ->  {state, open_until - now, calls, failures}
PEEK = (
    LUA_NOW_MS
    + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or 0)
return {state, open_until - now, redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])}
"""
)


class RedisCircuitBreaker(CircuitBreaker):
    """Shared through Redis. The throttle's Redis backend runs the admit and record scripts in
    its own (`admit_keys` … `record_args`), so a provider request costs one round trip
    each way for both."""

    @staticmethod
    def _keys(provider: str) -> list[str]:
        base = redis_key("circuit", provider)
        return [f"{base}:state", f"{base}:calls", f"{base}:failures"]

    def admit_keys(self, passage: Passage) -> list[str]:
        return self._keys(passage.provider)[:1]

    def admit_args(self, passage: Passage) -> list[Any]:
        return [passage.probe_ttl_ms]

    def admitted(self, passage: Passage, reply: list[Any]) -> None:
        """Take the admit script's reply: raise the refusal, or note a probe."""
        allowed, probe, retry_ms = reply
        if not int(allowed):
            raise refusal(passage.label, int(retry_ms) / 1000)
        passage.probe = bool(int(probe))

    def record_keys(self, passage: Passage) -> list[str]:
        return self._keys(passage.provider)

    @staticmethod
    def _record_args(*, failed: bool, at_once: bool, retry_after_ms: int, probe: bool) -> list[Any]:
        params = _params()
        return [
            uuid.uuid4().hex,
            int(failed),
            int(at_once),
            retry_after_ms,
            int(probe),
            int(params["window_ms"]),
            int(params["min_calls"]),
            params["ratio"],
            int(params["cooldown_ms"]),
        ]

    def record_args(self, passage: Passage) -> list[Any]:
        failed, at_once, retry_after_ms = passage.outcome()
        return self._record_args(failed=failed, at_once=at_once, retry_after_ms=retry_after_ms, probe=passage.probe)

    async def _admit(self, provider: str, probe_ttl_ms: int) -> Admission:
        allowed, probe, retry_ms = await redis_script(ADMIT)(keys=[self._keys(provider)[0]], args=[probe_ttl_ms])
        return Admission(bool(allowed), bool(probe), int(retry_ms) / 1000)

    async def _record(self, provider: str, *, failed: bool, at_once: bool, retry_after_ms: int, probe: bool) -> None:
        await redis_script(RECORD)(
            keys=self._keys(provider),
            args=self._record_args(failed=failed, at_once=at_once, retry_after_ms=retry_after_ms, probe=probe),
        )

    async def snapshot(self, providers: list[str]) -> dict[str, dict[str, Any]]:
        result = {}
        for provider in providers:
            state, retry_ms, calls, failures = await redis_script(PEEK)(keys=self._keys(provider))
            state = state.decode() if isinstance(state, bytes) else state
            retry = max(0, int(retry_ms)) if state == OPEN else 0
            result[provider] = {
                "state": HALF_OPEN if state == OPEN and retry == 0 else state,
                "calls": int(calls),
                "failures": int(failures),
                "retry_in_s": retry / 1000,
            }
        return result


_local = LocalCircuitBreaker()
_redis = RedisCircuitBreaker()


def get_circuit_breaker() -> CircuitBreaker:
    return _redis if settings.REDIS_URL else _local
