"""A call outlives its socket: the client that reconnects and resends its request_id gets that same call."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.conftest import REDIS_URL, ServerProcess, database_url, provider_env
from tests.helpers import communicator, frames_until, wait_for
from tools_app.client import ExaiClient

pytestmark = pytest.mark.django_db(transaction=True)


async def session(token: str, session_id: str) -> Any:
    comm = communicator()
    ok, _ = await comm.connect()
    assert ok
    await comm.send_json_to({"op": "hello", "token": token, "session_id": session_id})
    assert (await comm.receive_json_from())["ok"]
    return comm


async def send_call(comm: Any, prompt: str, request_id: str = "r1") -> None:
    frame = {"op": "call_tool", "request_id": request_id, "name": "chat", "arguments": {"prompt": prompt}}
    await comm.send_json_to(frame)


async def test_a_call_whose_socket_drops_is_picked_up_by_the_resent_request_id(token: str, stub: Any) -> None:
    first = await session(token, "s-drop")
    await send_call(first, "long one [[stub:delay=0.6]]")
    await wait_for(lambda: stub.in_flight == 1)
    await first.disconnect()  # the network drops

    second = await session(token, "s-drop")
    await send_call(second, "long one [[stub:delay=0.6]]")
    result = (await frames_until(second, "call_tool_res"))[-1]
    assert result["text"].startswith("stub reply from kimi-k2.6: long one")
    assert len(stub.chat_requests()) == 1 and stub.aborted == 0
    await second.disconnect()


async def test_a_call_that_finished_while_the_client_was_away_is_answered_from_its_result(
    token: str, stub: Any
) -> None:
    first = await session(token, "s-away")
    await send_call(first, "quick [[stub:delay=0.2]]")
    await wait_for(lambda: stub.in_flight == 1)
    await first.disconnect()
    await wait_for(lambda: stub.in_flight == 0 and len(stub.chat_requests()) == 1)
    await asyncio.sleep(0.1)

    second = await session(token, "s-away")
    await send_call(second, "quick [[stub:delay=0.2]]")
    frames = await frames_until(second, "call_tool_res")
    assert frames[-1]["text"].startswith("stub reply from kimi-k2.6: quick")
    assert len(stub.chat_requests()) == 1
    await second.disconnect()


async def test_an_unclaimed_call_is_cancelled_after_the_grace(token: str, stub: Any, settings: Any) -> None:
    settings.EXAI_RESUME_GRACE_S = 0.3
    first = await session(token, "s-gone")
    await send_call(first, "[[stub:delay=5]]")
    await wait_for(lambda: stub.in_flight == 1)
    await first.disconnect()
    await asyncio.sleep(0.15)
    assert stub.aborted == 0  # still within the grace
    await wait_for(lambda: stub.aborted == 1, timeout=3)


async def test_a_cancel_on_the_new_socket_stops_the_call_at_once(token: str, stub: Any) -> None:
    first = await session(token, "s-cancel")
    await send_call(first, "[[stub:delay=5]]")
    await wait_for(lambda: stub.in_flight == 1)
    await first.disconnect()
    second = await session(token, "s-cancel")
    await send_call(second, "[[stub:delay=5]]")
    await asyncio.sleep(0.1)
    await second.send_json_to({"op": "cancel", "request_id": "r1"})
    result = (await frames_until(second, "call_tool_res"))[-1]
    assert result["error"]["code"] == "cancelled"
    await wait_for(lambda: stub.aborted == 1)
    await second.disconnect()


async def test_another_session_with_the_same_request_id_runs_its_own_call(token: str, stub: Any) -> None:
    first = await session(token, "s-a")
    await send_call(first, "[[stub:delay=0.3]] a")
    second = await session(token, "s-b")
    await send_call(second, "[[stub:delay=0.3]] b")
    assert (await frames_until(first, "call_tool_res"))[-1]["text"].endswith("a (saw 2 messages)")
    assert (await frames_until(second, "call_tool_res"))[-1]["text"].endswith("b (saw 2 messages)")
    assert len(stub.chat_requests()) == 2
    await first.disconnect()
    await second.disconnect()


@pytest.mark.e2e
async def test_the_reconnecting_client_gets_its_call_back_after_a_dropped_connection(
    server: ServerProcess, token: str, stub: Any
) -> None:
    async with ExaiClient(f"{server.ws_url}/ws", token) as exai:
        call = asyncio.ensure_future(exai.call_tool("chat", {"prompt": "survive [[stub:delay=1]]"}))
        await wait_for(lambda: stub.in_flight == 1, timeout=10)
        await exai._socket.close()  # the connection drops; the client reconnects and resends
        result = await asyncio.wait_for(call, 15)
    assert result["text"].startswith("stub reply from kimi-k2.6: survive") and exai.reconnects == 1
    assert len(stub.chat_requests()) == 1 and stub.aborted == 0


# --- Across two server processes on Redis -------------------------------------------------


@pytest.fixture
def two_servers(stub: Any, redis_settings: Any) -> Iterator[list[ServerProcess]]:
    env = {
        **provider_env(stub),
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "EXAI_REDIS_PREFIX": f"exai-resume-{uuid.uuid4().hex[:8]}",
        "EXAI_LOG_LEVEL": "ERROR",
    }
    started = [ServerProcess(env).start() for _ in range(2)]
    yield started
    for process in started:
        process.stop()


async def raw_session(server: ServerProcess, token: str, session_id: str) -> Any:
    socket = await websockets.connect(f"{server.ws_url}/ws")
    await socket.send(json.dumps({"op": "hello", "token": token, "session_id": session_id}))
    assert json.loads(await socket.recv())["ok"]
    return socket


async def raw_result(socket: Any) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while (frame := json.loads(await socket.recv()))["op"] != "call_tool_res":
            pass
    return frame


CALL = {"op": "call_tool", "request_id": "x1", "name": "chat", "arguments": {"prompt": "cluster [[stub:delay=1.5]]"}}


@pytest.mark.e2e
async def test_a_call_dropped_on_one_process_is_answered_by_another_from_the_first_run(
    two_servers: list[ServerProcess], token: str, stub: Any
) -> None:
    first, second = two_servers
    socket = await raw_session(first, token, "cluster-s")
    await socket.send(json.dumps(CALL))
    await wait_for(lambda: stub.in_flight == 1, timeout=10)
    await socket.close()

    socket = await raw_session(second, token, "cluster-s")
    await socket.send(json.dumps(CALL))
    result = await raw_result(socket)
    await socket.close()
    assert result["text"].startswith("stub reply from kimi-k2.6: cluster")
    assert len(stub.chat_requests()) == 1 and stub.aborted == 0


@pytest.mark.e2e
async def test_a_cancel_sent_to_another_process_stops_the_call_where_it_runs(
    two_servers: list[ServerProcess], token: str, stub: Any
) -> None:
    first, second = two_servers
    socket = await raw_session(first, token, "cluster-c")
    await socket.send(json.dumps({**CALL, "arguments": {"prompt": "[[stub:delay=10]]"}}))
    await wait_for(lambda: stub.in_flight == 1, timeout=10)
    await socket.close()

    socket = await raw_session(second, token, "cluster-c")
    await socket.send(json.dumps({**CALL, "arguments": {"prompt": "[[stub:delay=10]]"}}))
    await asyncio.sleep(0.3)
    await socket.send(json.dumps({"op": "cancel", "request_id": "x1"}))
    assert (await raw_result(socket))["error"]["code"] == "cancelled"
    await socket.close()
    await wait_for(lambda: stub.aborted == 1, timeout=5)


@pytest.mark.parametrize("backend", ["in-process", "redis"])
async def test_a_cancel_right_behind_its_call_always_stops_it(
    token: str, stub: Any, backend: str, request: Any
) -> None:
    if backend == "redis":
        request.getfixturevalue("redis_settings")
    comm = await session(token, f"s-quick-{backend}")
    for index in range(5):
        await send_call(comm, "[[stub:delay=5]]", request_id=f"c{index}")
        await asyncio.sleep(0.02 * index)  # before, while and after the call reaches the provider
        await comm.send_json_to({"op": "cancel", "request_id": f"c{index}"})
        result = (await frames_until(comm, "call_tool_res", timeout=4))[-1]
        assert result["error"]["code"] == "cancelled", result
    await wait_for(lambda: stub.in_flight == 0)
    await comm.disconnect()
