"""Health endpoints for load balancers, orchestrators and operators.

/health/live/       the process is up (no dependency is touched)
/health/ready/      it can serve: database, cache and channel layer answer, and it is not draining
/health/            each dependency checked, with its time; 503 naming what failed
/health/websocket/  sockets and calls of this process, throttle and circuit state

Unauthenticated on purpose: they hold states and counts, nothing of any user's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from tools_app.health import health_snapshot
from tools_app.lifecycle import get_lifecycle

CHECK_TIMEOUT_S = 2.0


@database_sync_to_async
def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_cache() -> None:
    key, value = f"exai:health:{uuid.uuid4().hex}", uuid.uuid4().hex
    await cache.aset(key, value, 10)
    if await cache.aget(key) != value:
        raise RuntimeError("the cache did not return what was just stored")
    await cache.adelete(key)


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    channel = await layer.new_channel("health.")
    await layer.send(channel, {"type": "health.ping"})
    if (await layer.receive(channel)).get("type") != "health.ping":
        raise RuntimeError("the channel layer returned another message")


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "database": _check_database,
    "cache": _check_cache,
    "channel_layer": _check_channel_layer,
}


async def _run(name: str, check: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check()
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S:g}s"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}


async def _dependencies() -> dict[str, dict[str, Any]]:
    results = await asyncio.gather(*(_run(name, check) for name, check in CHECKS.items()))
    return dict(zip(CHECKS, results, strict=True))


async def failing_dependencies() -> list[str]:
    """The names of the dependencies that fail their check now (none: healthy)."""
    checks = await _dependencies()
    return [name for name, result in checks.items() if not result["ok"]]


async def health(request: HttpRequest) -> JsonResponse:
    checks = await _dependencies()
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "ok" if not failing else "error", "failing": failing, "checks": checks}
    return JsonResponse(body, status=503 if failing else 200)


async def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


async def ready(request: HttpRequest) -> JsonResponse:
    if get_lifecycle().draining:
        return JsonResponse({"status": "draining", "failing": ["draining"]}, status=503)
    checks = await _dependencies()
    failing = [name for name, result in checks.items() if not result["ok"]]
    return JsonResponse(
        {"status": "ok" if not failing else "error", "failing": failing}, status=503 if failing else 200
    )


async def websocket_health(request: HttpRequest) -> JsonResponse:
    lifecycle = get_lifecycle()
    body = {
        "status": "draining" if lifecycle.draining else "ok",
        "connections": len(lifecycle.sockets),
        "calls_in_flight": len(lifecycle.calls),
        **await health_snapshot(),
    }
    return JsonResponse(body, status=503 if lifecycle.draining else 200)
