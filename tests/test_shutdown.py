"""Graceful shutdown: calls in flight finish or answer `shutting_down`, nothing leaks, sockets close 1012."""

import asyncio
from typing import Any

import pytest

from tests.helpers import call, connected, frames_until, wait_for
from tools_app.lifecycle import get_lifecycle
from tools_app.throttle import get_throttle

pytestmark = pytest.mark.django_db(transaction=True)


async def start_call(comm: Any, request_id: str, prompt: str) -> None:
    await comm.send_json_to(
        {"op": "call_tool", "request_id": request_id, "name": "chat", "arguments": {"prompt": prompt}}
    )


async def test_a_call_in_flight_finishes_new_calls_are_refused_and_the_socket_closes_1012(
    token: str, stub: Any, settings: Any
) -> None:
    settings.EXAI_DRAIN_S = 5
    comm = await connected(token)
    await start_call(comm, "inflight", "finish me [[stub:delay=0.4]]")
    await wait_for(lambda: stub.in_flight == 1)
    shutdown = asyncio.ensure_future(get_lifecycle().shutdown())
    await asyncio.sleep(0.05)

    late = (await call(comm, "chat", {"prompt": "too late"}, request_id="late"))[-1]
    assert late["error"]["code"] == "shutting_down"
    finished = [f for f in await frames_until(comm, "call_tool_res") if f["op"] == "call_tool_res"][-1]
    assert finished["request_id"] == "inflight" and "finish me" in finished["text"]
    assert (await comm.receive_output(timeout=5))["code"] == 1012
    await shutdown
    snapshot = await get_throttle().snapshot()
    assert snapshot["global"]["in_use"] == 0 and snapshot["providers"]["kimi"]["in_use"] == 0


async def test_a_call_longer_than_the_drain_is_stopped_with_shutting_down_and_releases_its_slots(
    token: str, stub: Any, settings: Any
) -> None:
    settings.EXAI_DRAIN_S = 0.2
    comm = await connected(token)
    await start_call(comm, "long", "[[stub:delay=5]]")
    await wait_for(lambda: stub.in_flight == 1)
    await get_lifecycle().shutdown()
    result = [f for f in await frames_until(comm, "call_tool_res") if f["op"] == "call_tool_res"][-1]
    assert result["error"]["code"] == "shutting_down"
    await wait_for(lambda: stub.aborted == 1)
    assert (await get_throttle().snapshot())["global"]["in_use"] == 0
    assert (await comm.receive_output(timeout=5))["code"] == 1012


async def test_a_draining_server_turns_new_sockets_away_with_1012(token: str) -> None:
    await get_lifecycle().shutdown()
    comm = await connected(token)
    assert (await comm.receive_output(timeout=5))["code"] == 1012


async def test_flush_hooks_run_after_the_calls_drained(token: str, stub: Any, settings: Any) -> None:
    from tools_app import lifecycle

    settings.EXAI_DRAIN_S = 5
    seen: list[int] = []

    async def flush() -> None:
        seen.append(stub.in_flight)

    lifecycle.on_shutdown(flush)
    try:
        comm = await connected(token)
        await start_call(comm, "x", "[[stub:delay=0.2]]")
        await wait_for(lambda: stub.in_flight == 1)
        await get_lifecycle().shutdown()
        assert seen == [0]
    finally:
        lifecycle._flush_hooks.remove(flush)
