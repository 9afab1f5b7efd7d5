"""What the gateway core tells whoever listens: each call's sample, each provider failure,
the traffic of its sockets. The core imports no feature app; the apps subscribe here.

- `on_call(observer)`: one `CallSample` per finished call (a tool call, or background work
  such as an investigation or a cleanup), whatever its outcome. metrics_app records it.
- `on_failure(observer)`: a provider failure worth an error record (its exception and what
  the call knew). errors_app captures it.
- `call_context`: what the running call is about (tool, request id, user, provider, model),
  for whoever records an error while it runs.
- `frames`: this process's WebSocket frames in and out, read by the dashboard as rates.

Observers are plain functions, called in the order they subscribed, on the caller's path:
they must be quick and must not raise (a failing observer is logged and skipped, never the
call's problem). They subscribe once, from their app's `AppConfig.ready()`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# What the current call is about (tool, request id, user id, provider, model).
call_context: ContextVar[dict[str, Any] | None] = ContextVar("exai_call_context", default=None)

# This process's WebSocket frames, "in" and "out": an increment on the hot path, nothing more.
frames: Counter[str] = Counter()


@dataclass(frozen=True, slots=True)
class CallSample:
    """One finished call: what it was, how it ended, where its time went."""

    tool: str
    user_id: Any
    request_id: str
    status: str  # "ok", or the error code it answered
    metrics: Mapping[str, Any]  # CallContext.latency_metrics()
    provider: str | None
    model: str | None
    ttft_ms: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens: int = 0  # of tokens_in, what the provider had cached
    reasoning_tokens: int = 0  # of tokens_out, what the model thought
    cost_usd: float | None = 0.0  # None: a model of the call has no price (tools_app/pricing.py)
    bytes_in: int = 0  # the text the caller sent and got, UTF-8
    bytes_out: int = 0
    cache_hit: bool = False


CallObserver = Callable[[CallSample], None]
FailureObserver = Callable[[BaseException, dict[str, Any]], None]

_call_observers: list[CallObserver] = []
_failure_observers: list[FailureObserver] = []


def on_call(observer: CallObserver) -> None:
    if observer not in _call_observers:
        _call_observers.append(observer)


def on_failure(observer: FailureObserver) -> None:
    if observer not in _failure_observers:
        _failure_observers.append(observer)


def call_finished(sample: CallSample) -> None:
    for observer in _call_observers:
        try:
            observer(sample)
        except Exception:
            logger.warning("a call observer (%r) failed", observer, exc_info=True)


def provider_failed(exc: BaseException, context: dict[str, Any]) -> None:
    for observer in _failure_observers:
        try:
            observer(exc, context)
        except Exception:
            logger.warning("a failure observer (%r) failed", observer, exc_info=True)
