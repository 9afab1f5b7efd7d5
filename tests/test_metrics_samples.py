"""One latency sample per tool call, whatever its outcome, written off the call path without loss."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from metrics_app.models import LatencySample
from metrics_app.recorder import buffer
from tests.helpers import call, connected, frames_until
from tools_app.lifecycle import get_lifecycle
from tools_app.services import tool_call

pytestmark = pytest.mark.django_db(transaction=True)


async def run(user: Any, name: str, arguments: Any) -> tuple[dict[str, Any], LatencySample]:
    request_id = uuid.uuid4().hex
    outcome = await tool_call(user=user, name=name, arguments=arguments, request_id=request_id)
    await sync_to_async(buffer.flush)()
    return dict(outcome), await LatencySample.objects.aget(request_id=request_id)


async def test_a_successful_call_records_where_its_time_went(user: Any) -> None:
    outcome, sample = await run(user, "chat", {"prompt": "measure me", "model": "glm-4.5"})
    metrics = outcome["outputs"][0]["metadata"]["latency_metrics"]
    assert (sample.tool, sample.provider, sample.model, sample.status) == ("chat", "glm", "glm-4.5", "ok")
    assert sample.user_id == user.pk and sample.total_latency_ms == metrics["total_latency_ms"]
    assert sample.processing_ms == metrics["processing_ms"] > 0
    assert 0 < sample.ttft_ms <= sample.total_latency_ms
    assert sample.overhead_ms == pytest.approx(
        sample.total_latency_ms
        - metrics["processing_ms"]
        - metrics["global_sem_wait_ms"]
        - metrics["provider_sem_wait_ms"]
        - metrics["user_sem_wait_ms"]
        - metrics["conversation_wait_ms"],
        abs=0.01,
    )
    assert sample.tokens_in > 0 and sample.tokens_out > 0
    assert sample.bytes_in == len("measure me") + len("glm-4.5") and sample.bytes_out == len(outcome["text"])


async def test_a_provider_error_is_recorded_with_its_code_and_provider(user: Any) -> None:
    _, sample = await run(user, "chat", {"prompt": "x [[stub:status=400]]"})
    assert (sample.status, sample.provider, sample.model) == ("provider_error", "kimi", "kimi-k2.6")
    assert sample.processing_ms > 0


async def test_a_timeout_is_recorded(user: Any, settings: Any) -> None:
    settings.EXAI_KIMI_TIMEOUT_S = 0.2
    _, sample = await run(user, "chat", {"prompt": "slow [[stub:delay=2]]"})
    assert sample.status == "timeout" and sample.total_latency_ms >= 200


async def test_refused_calls_are_recorded_too(user: Any) -> None:
    assert (await run(user, "nope", {}))[1].status == "unknown_tool"
    assert (await run(user, "chat", {"prompt": 7}))[1].status == "invalid_arguments"


async def test_a_cancelled_call_is_recorded_as_cancelled(token: str, stub: Any) -> None:
    comm = await connected(token)
    try:
        await comm.send_json_to(
            {"op": "call_tool", "request_id": "c1", "name": "chat", "arguments": {"prompt": "[[stub:delay=5]]"}}
        )
        await frames_until(comm, "call_tool_ack")
        async with asyncio.timeout(5):
            while stub.in_flight == 0:
                await asyncio.sleep(0.01)
        await comm.send_json_to({"op": "cancel", "request_id": "c1"})
        assert (await frames_until(comm, "call_tool_res"))[-1]["error"]["code"] == "cancelled"
    finally:
        await comm.disconnect()
    await sync_to_async(buffer.flush)()
    sample = await LatencySample.objects.aget(request_id="c1")
    assert (sample.status, sample.provider) == ("cancelled", "kimi")


async def test_a_burst_of_five_thousand_calls_loses_no_sample(user: Any, settings: Any) -> None:
    settings.EXAI_USER_CALLS_PER_MIN = 0  # one user's burst, far over the rate limit on purpose
    prefix = uuid.uuid4().hex[:8]
    outcomes = await asyncio.gather(
        *(tool_call(user=user, name="version", arguments={}, request_id=f"{prefix}-{i}") for i in range(5000))
    )
    assert all("text" in outcome for outcome in outcomes)
    await sync_to_async(buffer.flush)()
    assert await LatencySample.objects.filter(request_id__startswith=prefix).acount() == 5000


async def test_shutdown_writes_the_samples_still_buffered(token: str) -> None:
    comm = await connected(token)
    try:
        await call(comm, "version", {}, request_id="last-before-shutdown")
    finally:
        await comm.disconnect()
    await get_lifecycle().shutdown()
    assert await LatencySample.objects.filter(request_id="last-before-shutdown").aexists()
