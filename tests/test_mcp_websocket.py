"""MCP JSON-RPC over the /mcp WebSocket (subprotocol `mcp`), in raw frames."""

import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from tests.helpers import communicator, wait_for
from tools_app.throttle import get_throttle

pytestmark = pytest.mark.django_db(transaction=True)

MODERN = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}


async def mcp(token: str | None) -> WebsocketCommunicator:
    comm = communicator("/mcp", token=token, header=True, subprotocols=["mcp"])
    connected, subprotocol = await comm.connect()
    assert connected and subprotocol == "mcp"
    return comm


async def rpc(comm: WebsocketCommunicator, method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    await comm.send_json_to(message)
    return await comm.receive_json_from(timeout=5)


@pytest.mark.parametrize(
    ("asked", "agreed"), [("2025-06-18", "2025-06-18"), ("2025-11-25", "2025-11-25"), ("2024-01-01", "2025-11-25")]
)
async def test_initialize_negotiates_a_handshake_revision(token: str, asked: str, agreed: str) -> None:
    comm = await mcp(token)
    reply = await rpc(
        comm, "initialize", {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    )
    assert reply["result"]["protocolVersion"] == agreed
    assert reply["result"]["serverInfo"]["name"] == "exai"
    assert reply["result"]["capabilities"] == {
        "tools": {"listChanged": False},
        "prompts": {"listChanged": False},
        "resources": {"subscribe": True, "listChanged": True},
        "completions": {},
        "logging": {},
    }
    await comm.send_json_to({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert (await rpc(comm, "ping", id=2)) == {"jsonrpc": "2.0", "id": 2, "result": {}}
    await comm.disconnect()


async def test_server_discover_advertises_all_three_revisions(token: str) -> None:
    comm = await mcp(token)
    result = (await rpc(comm, "server/discover", {"_meta": MODERN}))["result"]
    assert result["supportedVersions"] == ["2025-06-18", "2025-11-25", "2026-07-28"]
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "exai"
    await comm.disconnect()


async def test_a_modern_request_at_an_unknown_revision_gets_32022_with_the_supported_list(token: str) -> None:
    comm = await mcp(token)
    reply = await rpc(comm, "tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}})
    assert reply["error"]["code"] == -32022
    assert "2026-07-28" in reply["error"]["data"]["supported"]
    await comm.disconnect()


async def test_tools_list_and_a_stateless_modern_call(token: str) -> None:
    comm = await mcp(token)
    listing = (await rpc(comm, "tools/list", {"_meta": MODERN}))["result"]
    assert {"chat", "version"} <= {tool["name"] for tool in listing["tools"]}
    assert listing["resultType"] == "complete" and listing["ttlMs"] == 0
    result = (await rpc(comm, "tools/call", {"name": "chat", "arguments": {"prompt": "hi"}, "_meta": MODERN}, id=2))[
        "result"
    ]
    assert result["isError"] is False and result["resultType"] == "complete"
    assert result["content"][0]["text"].startswith("stub reply from kimi-k2.6: hi")
    assert result["_meta"]["latency_metrics"]["processing_ms"] > 0
    await comm.disconnect()


async def test_a_progress_token_gets_progress_notifications_before_the_result(token: str) -> None:
    comm = await mcp(token)
    await comm.send_json_to(
        {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {"name": "chat", "arguments": {"prompt": "hi"}, "_meta": {"progressToken": "p-1"}},
        }
    )
    first = await comm.receive_json_from()
    assert first["method"] == "notifications/progress"
    assert first["params"]["progressToken"] == "p-1" and first["params"]["progress"] == 1
    while "id" not in (reply := await comm.receive_json_from()):
        pass
    assert reply["id"] == 9 and reply["result"]["isError"] is False
    await comm.disconnect()


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [({"prompt": 3}, "is not of type 'string'"), ({"prompt": "x [[stub:status=400]]"}, "provider_error")],
)
async def test_tool_failures_are_results_with_is_error(token: str, arguments: dict[str, Any], fragment: str) -> None:
    comm = await mcp(token)
    result = (await rpc(comm, "tools/call", {"name": "chat", "arguments": arguments}))["result"]
    assert result["isError"] is True and fragment in result["content"][0]["text"]
    await comm.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{oops", -32700),
        (json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]), -32600),
        (json.dumps({"id": 1, "method": "ping"}), -32600),
        (json.dumps({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}), -32600),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": 5}), -32600),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage"}), -32601),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [1]}), -32602),
        (
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "chat", "arguments": 5}}),
            -32602,
        ),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nope"}}), -32602),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}), -32602),
    ],
)
async def test_malformed_requests_get_json_rpc_errors_and_the_socket_stays_usable(
    token: str, frame: str, code: int
) -> None:
    comm = await mcp(token)
    await comm.send_to(text_data=frame)
    assert (await comm.receive_json_from())["error"]["code"] == code
    assert (await rpc(comm, "ping", id=77))["result"] == {}
    await comm.disconnect()


async def test_without_a_token_requests_are_refused_but_ping_answers() -> None:
    comm = await mcp(None)
    reply = await rpc(comm, "tools/list")
    assert reply["error"]["code"] == -32001 and "unauthorized" in reply["error"]["message"]
    assert (await rpc(comm, "ping", id=2))["result"] == {}
    await comm.disconnect()


async def test_notifications_cancelled_aborts_the_call_and_sends_no_result(token: str, stub: Any) -> None:
    comm = await mcp(token)
    await comm.send_json_to(
        {
            "jsonrpc": "2.0",
            "id": "c1",
            "method": "tools/call",
            "params": {"name": "chat", "arguments": {"prompt": "[[stub:delay=5]]"}},
        }
    )
    await wait_for(lambda: stub.in_flight == 1)
    await comm.send_json_to({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "c1"}})
    await wait_for(lambda: stub.aborted == 1)
    assert (await rpc(comm, "ping", id=3)) == {"jsonrpc": "2.0", "id": 3, "result": {}}
    assert (await get_throttle().snapshot())["global"]["in_use"] == 0
    await comm.disconnect()


async def test_closing_the_socket_cancels_its_calls(token: str, stub: Any) -> None:
    comm = await mcp(token)
    await comm.send_json_to(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "chat", "arguments": {"prompt": "[[stub:delay=5]]"}},
        }
    )
    await wait_for(lambda: stub.in_flight == 1)
    await comm.disconnect()
    await wait_for(lambda: stub.aborted == 1)
