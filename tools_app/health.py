"""The state of the gateway, composed from parts: the core's own (providers, throttle,
circuits) and whatever each feature app provides (files kept, errors that want a look).

`health_snapshot()` is the core's part, for the `status` tool, /health/websocket/, the
dashboard and Prometheus. Apps add theirs with `provide_status_part(name, part)` from
their AppConfig.ready(); `status_parts()` gathers them (synchronous: each part may query
the database, so it runs in the ORM's thread).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tools_app.circuit import get_circuit_breaker
from tools_app.providers import all_providers, configured_providers
from tools_app.throttle import get_throttle

StatusPart = Callable[[], Any]

_parts: dict[str, StatusPart] = {}


def provide_status_part(name: str, part: StatusPart) -> None:
    _parts[name] = part


def status_parts() -> dict[str, Any]:
    """Every app's part, by name (call from a thread that may use the ORM)."""
    return {name: part() for name, part in _parts.items()}


async def health_snapshot() -> dict[str, Any]:
    """Providers and throttle state, for the `health` op and the health endpoints."""
    providers = [
        {"provider": provider.name, "configured": provider.configured, "models": len(provider.models())}
        for provider in all_providers()
    ]
    circuits = await get_circuit_breaker().snapshot([provider.name for provider in configured_providers()])
    return {"providers": providers, "throttle": await get_throttle().snapshot(), "circuits": circuits}
