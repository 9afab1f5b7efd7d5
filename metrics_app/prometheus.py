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
SLOTS = Gauge(
    "exai_throttle_slots", "Throttle slots: in_use, waiting and limit.", ["pool", "state"], multiprocess_mode=_SHARED
)
CIRCUIT = Gauge(
    "exai_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", ["provider"], multiprocess_mode="max"
)
_CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def observe(sample: LatencySample) -> None:
    CALLS.labels(sample.tool, sample.provider, sample.model, sample.status).inc()
    LATENCY.labels(sample.tool, sample.provider, sample.model).observe(sample.total_latency_ms / 1000)
    OVERHEAD.labels(sample.tool).observe(sample.overhead_ms / 1000)
    if sample.provider:
        PROVIDER_TIME.labels(sample.provider, sample.model).observe(sample.processing_ms / 1000)
        SLOT_WAIT.labels(sample.provider).observe((sample.global_sem_wait_ms + sample.provider_sem_wait_ms) / 1000)


async def render() -> tuple[bytes, str]:
    """The exposition text, with the gauges read now."""
    from tools_app.services import health_snapshot

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
