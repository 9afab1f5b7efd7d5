"""The circuit breaker: opens on a failing provider, fails fast, probes, closes on recovery."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers import call, connected
from tools_app.circuit import CircuitBreaker, LocalCircuitBreaker, RedisCircuitBreaker
from tools_app.providers import ProviderError

SERVER_ERROR = ProviderError("boom", retryable=True, status=503)
BAD_REQUEST = ProviderError("your fault", status=400)


@pytest.fixture(params=["local", "redis"])
async def breaker(request: Any, settings: Any) -> AsyncIterator[CircuitBreaker]:
    settings.EXAI_CIRCUIT_COOLDOWN_S = 0.3
    if request.param == "redis":
        request.getfixturevalue("redis_settings")
        yield RedisCircuitBreaker()
    else:
        yield LocalCircuitBreaker()


async def fail(breaker: CircuitBreaker, times: int, error: ProviderError = SERVER_ERROR) -> None:
    for _ in range(times):
        admission = await breaker.admit("kimi", "Kimi", probe_ttl_s=5)
        await breaker.record("kimi", error, probe=admission.probe)


async def state(breaker: CircuitBreaker) -> str:
    return (await breaker.snapshot(["kimi"]))["kimi"]["state"]


async def test_a_single_failure_never_opens_the_circuit(breaker: CircuitBreaker) -> None:
    await fail(breaker, 1)
    assert await state(breaker) == "closed"


async def test_more_than_half_failing_over_the_minimum_opens_it_and_calls_fail_fast(breaker: CircuitBreaker) -> None:
    await fail(breaker, 4)
    assert await state(breaker) == "closed"
    await fail(breaker, 1)
    assert await state(breaker) == "open"
    with pytest.raises(ProviderError) as caught:
        await breaker.admit("kimi", "Kimi", probe_ttl_s=5)
    assert caught.value.code == "provider_unavailable" and "circuit is open" in caught.value.message


async def test_requests_the_provider_rightly_refused_do_not_count(breaker: CircuitBreaker) -> None:
    await fail(breaker, 10, BAD_REQUEST)
    assert await state(breaker) == "closed"


async def test_an_authentication_error_opens_it_at_once(breaker: CircuitBreaker) -> None:
    await fail(breaker, 1, ProviderError("bad key", status=401))
    assert await state(breaker) == "open"


async def test_after_the_cooldown_one_probe_passes_and_its_success_closes_the_circuit(breaker: CircuitBreaker) -> None:
    await fail(breaker, 1, ProviderError("bad key", status=401))
    await asyncio.sleep(0.35)
    probe = await breaker.admit("kimi", "Kimi", probe_ttl_s=5)
    assert probe.probe
    with pytest.raises(ProviderError):  # only one probe at a time
        await breaker.admit("kimi", "Kimi", probe_ttl_s=5)
    await breaker.record("kimi", None, probe=True)
    assert await state(breaker) == "closed"
    assert (await breaker.admit("kimi", "Kimi", probe_ttl_s=5)).probe is False


async def test_a_failed_probe_opens_it_again(breaker: CircuitBreaker) -> None:
    await fail(breaker, 1, ProviderError("bad key", status=401))
    await asyncio.sleep(0.35)
    await fail(breaker, 1)
    assert await state(breaker) == "open"


async def test_a_retry_after_longer_than_the_cooldown_is_honoured(breaker: CircuitBreaker) -> None:
    await fail(breaker, 1, ProviderError("slow down", status=401, retry_after_s=2))
    await asyncio.sleep(0.35)
    with pytest.raises(ProviderError) as caught:
        await breaker.admit("kimi", "Kimi", probe_ttl_s=5)
    assert 1.0 < caught.value.retry_after_s <= 2.0


@pytest.mark.django_db(transaction=True)
async def test_a_failing_provider_trips_the_circuit_fails_fast_and_recovers(
    token: str, stub: Any, settings: Any
) -> None:
    settings.EXAI_CIRCUIT_COOLDOWN_S = 0.3
    comm = await connected(token)
    for index in range(5):
        result = (await call(comm, "chat", {"prompt": f"down {index} [[stub:status=503]]"}, request_id=f"f{index}"))[-1]
        assert result["error"]["code"] == "provider_error"
    fast = (await call(comm, "chat", {"prompt": "anyone there?"}, request_id="fast"))[-1]
    assert fast["error"]["code"] == "provider_unavailable" and "circuit is open" in fast["error"]["message"]
    assert len(stub.chat_requests()) == 5  # failing fast never reached the provider

    await comm.send_json_to({"op": "health"})
    assert (await comm.receive_json_from())["circuits"]["kimi"]["state"] == "open"

    await asyncio.sleep(0.35)
    probe = (await call(comm, "chat", {"prompt": "back?"}, request_id="probe"))[-1]
    assert probe["text"].startswith("stub reply")
    await comm.send_json_to({"op": "health"})
    health = await comm.receive_json_from()
    assert health["circuits"]["kimi"]["state"] == "closed" and health["circuits"]["glm"]["state"] == "closed"
    await comm.disconnect()
