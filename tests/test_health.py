"""Health endpoints: liveness, readiness, each dependency checked and named when it fails."""

from typing import Any

import pytest
from django.test import AsyncClient

from tests.conftest import free_port
from tools_app.lifecycle import get_lifecycle

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE_REDIS = f"redis://127.0.0.1:{free_port()}/0"


async def get(path: str) -> Any:
    return await AsyncClient().get(path)


async def test_liveness_answers_without_touching_any_dependency(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": UNREACHABLE_REDIS}
    }
    response = await get("/health/live/")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_health_checks_database_cache_and_channel_layer() -> None:
    response = await get("/health/")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"database", "cache", "channel_layer"}
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())


async def test_a_failing_cache_is_named_and_makes_health_and_readiness_503(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": UNREACHABLE_REDIS}
    }
    response = await get("/health/")
    body = response.json()
    assert response.status_code == 503 and body["failing"] == ["cache"]
    assert "Error" in body["checks"]["cache"]["error"]
    assert body["checks"]["database"]["ok"] and body["checks"]["channel_layer"]["ok"]
    ready = await get("/health/ready/")
    assert (ready.status_code, ready.json()["failing"]) == (503, ["cache"])


async def test_a_failing_channel_layer_is_named(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [UNREACHABLE_REDIS]}}
    }
    response = await get("/health/")
    assert response.status_code == 503 and response.json()["failing"] == ["channel_layer"]


async def test_readiness_is_ok_until_the_server_drains() -> None:
    assert (await get("/health/ready/")).status_code == 200
    await get_lifecycle().shutdown()
    response = await get("/health/ready/")
    assert (response.status_code, response.json()["status"]) == (503, "draining")
    assert (await get("/health/websocket/")).status_code == 503
