"""Random frames against /ws and /mcp: errors come back, the server never falls over, nothing leaks.

Hypothesis makes the frames: random JSON, requests with wrong types, huge strings, deep
nesting, invalid UTF-8 and binary frames. After each example every call has ended and
every throttle slot is back; a separate test sends the same nasty batch again and again
and checks that the server's memory stays flat.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
import uuid
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import communicator, wait_for
from tools_app.errors import ERROR_CODES
from tools_app.throttle import get_throttle
from tools_app.tools import REGISTRY

pytestmark = pytest.mark.django_db(transaction=True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
huge_text = st.sampled_from([70_000, 1_000_000, 17 * 1024 * 1024]).map(lambda n: "x" * n)
deep_nesting = st.integers(50, 200_000).map(lambda depth: "[" * depth + "]" * depth)
invalid_utf8 = st.binary(max_size=32).map(lambda data: b"\xff\xfe" + data + b"\xc3\x28")
tool_names = st.sampled_from([*REGISTRY, "no_such_tool", ""]) | json_values
tool_arguments = st.dictionaries(
    st.sampled_from(["prompt", "model", "files", "temperature", "continuation_id", "thinking_mode", "action"]),
    json_values | huge_text,
    max_size=3,
)

exai_requests = st.fixed_dictionaries(
    {"op": st.sampled_from(["list_tools", "call_tool", "cancel", "ping", "health", "hello", "nope"]) | json_values},
    optional={
        "request_id": st.text(max_size=12) | json_values,
        "name": tool_names,
        "arguments": tool_arguments | json_values,
        "token": st.text(max_size=24),
        "session_id": json_values,
    },
)
mcp_requests = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "1.0"]) | json_values,
        "method": st.sampled_from(
            ["initialize", "ping", "tools/list", "tools/call", "server/discover", "notifications/cancelled", "x/y"]
        )
        | json_values,
    },
    optional={
        "id": st.integers() | st.text(max_size=8) | json_values,
        "params": st.fixed_dictionaries(
            {},
            optional={
                "name": tool_names,
                "arguments": tool_arguments | json_values,
                "protocolVersion": st.sampled_from(["2025-06-18", "2025-11-25", "1999-01-01"]) | json_values,
                "_meta": json_values,
                "requestId": json_values,
            },
        )
        | json_values,
    },
)


def frames(requests: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    text = st.one_of(
        requests.map(json.dumps),
        st.lists(requests, min_size=1, max_size=3).map(json.dumps),  # a batch
        json_values.map(json.dumps),
        st.text(max_size=40),
        deep_nesting,
        huge_text,
    )
    binary = st.one_of(invalid_utf8, st.binary(max_size=64), requests.map(lambda r: json.dumps(r).encode()))
    return st.one_of(text.map(lambda t: ("text", t)), binary.map(lambda b: ("bytes", b)))


FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


async def send(comm: WebsocketCommunicator, frame: tuple[str, Any]) -> None:
    kind, data = frame
    # Straight to the application: the communicator's send_to refuses empty frames, a client need not.
    await comm.send_input({"type": "websocket.receive", "text" if kind == "text" else "bytes": data})


async def replies_until(comm: WebsocketCommunicator, done: Any) -> tuple[list[Any], bool]:
    """Decode every frame the server sends until `done(frame)`; (frames, whether it closed instead)."""
    received: list[Any] = []
    while True:
        output = await comm.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            return received, True
        frame = json.loads(output["text"])  # every frame the server sends is JSON text
        received.append(frame)
        if done(frame):
            return received, False


async def everything_released() -> None:
    """No call left running: every global and provider slot back (in-process or in Redis),
    and in-process, no per-user or per-thread pool left behind either."""
    throttle = get_throttle()

    async def idle() -> bool:
        snapshot = await throttle.snapshot()
        pools = [snapshot["global"], *snapshot["providers"].values()]
        return all(pool["in_use"] == 0 and pool["waiting"] == 0 for pool in pools)

    async with asyncio.timeout(10):
        while not await idle():
            await asyncio.sleep(0.02)
    local_pools = getattr(throttle, "_pools", None)  # the in-process throttle's own state
    if local_pools is not None:
        await wait_for(lambda: all(name.startswith(("global", "provider:")) for name in local_pools), timeout=10)


@FUZZ
@given(batch=st.lists(frames(exai_requests), min_size=1, max_size=6))
async def test_random_frames_on_ws_get_errors_and_the_socket_stays_usable(token: str, batch: Any) -> None:
    comm = communicator("/ws", token=token)
    assert (await comm.connect())[0]
    marker = uuid.uuid4().hex
    for frame in batch:
        await send(comm, frame)
    # A cancel for a call that never was: its error, with this id, comes after every earlier frame's first reply.
    await comm.send_json_to({"op": "cancel", "request_id": marker})
    received, closed = await replies_until(comm, lambda frame: frame.get("request_id") == marker)
    for frame in received:
        assert isinstance(frame, dict) and isinstance(frame.get("op"), str), frame
        if "error" in frame:
            assert frame["error"]["code"] in ERROR_CODES and frame["error"]["message"], frame
    if closed:
        # Only a failed `hello` hangs up (close 4401, as the contract says).
        assert received and received[-1] == {"op": "hello_ack", "ok": False, "error": received[-1]["error"]}
    else:
        assert received[-1]["error"]["code"] == "invalid_request"
    await comm.disconnect()
    await everything_released()


@FUZZ
@given(batch=st.lists(frames(mcp_requests), min_size=1, max_size=6))
async def test_random_frames_on_mcp_get_json_rpc_errors_and_the_socket_stays_usable(token: str, batch: Any) -> None:
    comm = communicator("/mcp", token=token, header=True, subprotocols=["mcp"])
    assert (await comm.connect())[0]
    for frame in batch:
        await send(comm, frame)
    marker = uuid.uuid4().hex
    await comm.send_json_to({"jsonrpc": "2.0", "id": marker, "method": "ping"})
    received, closed = await replies_until(comm, lambda frame: isinstance(frame, dict) and frame.get("id") == marker)
    assert not closed
    for frame in received:
        for message in frame if isinstance(frame, list) else [frame]:
            assert message["jsonrpc"] == "2.0" and ("result" in message or "error" in message), message
            if "error" in message:
                assert isinstance(message["error"]["code"], int) and message["error"]["message"], message
    assert received[-1]["result"] == {}
    await comm.disconnect()
    await everything_released()


def call_frame(request_id: str, name: str, arguments: Any) -> tuple[str, str]:
    return ("text", json.dumps({"op": "call_tool", "request_id": request_id, "name": name, "arguments": arguments}))


NASTY = [
    ("text", "{"),
    ("text", "[" * 100_000 + "]" * 100_000),
    call_frame("big", "chat", {"prompt": "x" * 70_000}),
    call_frame("typed", "chat", {"prompt": 7}),
    call_frame("unknown", "nope", {}),
    call_frame("ok", "version", {}),
    ("text", json.dumps({"op": "cancel", "request_id": ["x"]})),
    ("text", json.dumps([1, 2, 3])),
    ("bytes", b"\xff\xfe\xc3\x28"),
    ("text", "x" * (17 * 1024 * 1024)),
]


async def one_pass(token: str) -> None:
    comm = communicator("/ws", token=token)
    assert (await comm.connect())[0]
    for frame in NASTY:
        await send(comm, frame)
    await comm.send_json_to({"op": "cancel", "request_id": "end"})
    received, closed = await replies_until(comm, lambda frame: frame.get("request_id") == "end")
    assert not closed and len(received) >= len(NASTY)
    await comm.disconnect()
    await everything_released()


async def test_the_same_nasty_frames_again_and_again_leave_memory_flat(token: str, settings: Any) -> None:
    settings.EXAI_USER_CALLS_PER_MIN = 0  # this test is about memory, not the rate limit
    await one_pass(token)  # warm-up: caches, compiled schemas, the idempotency entries of these ids
    tracemalloc.start()
    try:
        gc.collect()
        await asyncio.sleep(0)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            await one_pass(token)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    print(f"memory after 5 more passes: {growth / 1024:+.1f} KiB")
    assert growth < 512 * 1024
