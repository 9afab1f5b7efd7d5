"""Prometheus series: per-call histograms and counters in memory, throttle and circuit gauges read when scraped.

Several server processes on one host: give them all the same empty directory in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, wiped before they
start); `/metrics` of any of them then reports every process's calls added up. Throttle
and circuit gauges are cluster-wide with Redis, so processes report the same value and the
largest is kept; without Redis each process has its own throttle and they are summed.
Across hosts, scrape every host (each reports its own processes).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from tools_app.errors import ERROR_CODES
from tools_app.health import health_snapshot
from tools_app.providers import all_providers
from tools_app.tools import REGISTRY as TOOLS

if TYPE_CHECKING:
    from metrics_app.models import LatencySample

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_SHARED: Literal["max", "livesum"] = "max" if settings.REDIS_URL else "livesum"

CALLS = Counter(
    "exai_tool_calls", "Tool calls, by outcome (ok or the error code).", ["tool", "provider", "model", "status"]
)
LATENCY = Histogram(
    "exai_tool_call_latency_seconds", "Whole tool calls, end to end.", ["tool", "provider", "model"], buckets=BUCKETS
)
PROVIDER_TIME = Histogram(
    "exai_provider_latency_seconds", "Time spent in provider calls.", ["provider", "model"], buckets=BUCKETS
)
SLOT_WAIT = Histogram(
    "exai_slot_wait_seconds", "Time waiting for the global and provider throttle slots.", ["provider"], buckets=BUCKETS
)
OVERHEAD = Histogram(
    "exai_gateway_overhead_seconds",
    "The gateway's own time: total minus waits minus provider time.",
    ["tool"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
TOKENS = Counter(
    "exai_tokens",
    "Tokens by kind: input (a cache miss), cached_input (a cache hit), output, and reasoning (part of output).",
    ["provider", "model", "kind"],
)
COST = Counter(
    "exai_cost_usd", "What provider replies cost, in US dollars (priced models only).", ["provider", "model"]
)
UNPRICED = Counter("exai_unpriced_calls", "Calls with a reply from a model that has no price.", ["provider", "model"])
SLOTS = Gauge(
    "exai_throttle_slots", "Throttle slots: in_use, waiting and limit.", ["pool", "state"], multiprocess_mode=_SHARED
)
CIRCUIT = Gauge(
    "exai_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", ["provider"], multiprocess_mode="max"
)
_CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


# Every label value is one this server knows: a made-up tool or model name a client sends is
# `other`, so no client can grow the series (each name would cost ~35, never freed).
OTHER = "other"
STATUSES = ERROR_CODES | {"ok"}
_KNOWN_TTL_S = 5.0
_known: tuple[float, frozenset[str], frozenset[str], frozenset[str]] = (
    -_KNOWN_TTL_S,
    frozenset(),
    frozenset(),
    frozenset(),
)


def known_labels() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """This server's tools, providers and models (as last listed, and the known lineups), read every few seconds."""
    global _known
    if time.monotonic() - _known[0] >= _KNOWN_TTL_S:
        providers = all_providers()
        models = {spec.name for provider in providers for spec in provider.models()}
        models.update(model for provider in providers for model in provider.known_models)
        _known = (
            time.monotonic(),
            frozenset(TOOLS),
            frozenset(provider.name for provider in providers),
            frozenset(models),
        )
    return _known[1], _known[2], _known[3]


def observe(sample: LatencySample) -> None:
    tools, providers, models = known_labels()
    tool = sample.tool if sample.tool in tools else OTHER
    provider = sample.provider if not sample.provider or sample.provider in providers else OTHER
    model = sample.model if not sample.model or sample.model in models else OTHER
    status = sample.status if sample.status in STATUSES else OTHER
    CALLS.labels(tool, provider, model, status).inc()
    LATENCY.labels(tool, provider, model).observe(sample.total_latency_ms / 1000)
    OVERHEAD.labels(tool).observe(sample.overhead_ms / 1000)
    if provider:
        PROVIDER_TIME.labels(provider, model).observe(sample.processing_ms / 1000)
        SLOT_WAIT.labels(provider).observe((sample.global_sem_wait_ms + sample.provider_sem_wait_ms) / 1000)
    if sample.tokens_in or sample.tokens_out:
        TOKENS.labels(provider, model, "input").inc(max(0, sample.tokens_in - sample.cached_tokens))
        TOKENS.labels(provider, model, "cached_input").inc(sample.cached_tokens)
        TOKENS.labels(provider, model, "output").inc(sample.tokens_out)
        TOKENS.labels(provider, model, "reasoning").inc(sample.reasoning_tokens)
        if sample.cost_usd is None:
            UNPRICED.labels(provider, model).inc()
        else:
            COST.labels(provider, model).inc(sample.cost_usd)


async def render() -> tuple[bytes, str]:
    """The exposition text, with the gauges read now."""
    health = await health_snapshot()
    throttle = health["throttle"]
    for state in ("in_use", "waiting", "limit"):
        SLOTS.labels("global", state).set(throttle["global"][state])
        for provider, slots in throttle["providers"].items():
            SLOTS.labels(f"provider:{provider}", state).set(slots[state])
    for provider, circuit in health["circuits"].items():
        CIRCUIT.labels(provider).set(_CIRCUIT_VALUES.get(circuit["state"], 0))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
