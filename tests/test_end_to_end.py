"""A real daphne process, driven by real clients: websockets, httpx, and the official MCP SDK."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from errors_app.models import ErrorInvestigation
from tests.conftest import ROOT, ServerProcess
from tests.helpers import wait_for
from tools_app.client import ExaiClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

MCP_CLIENT_PYTHON = os.environ.get("EXAI_MCP_CLIENT_PYTHON")


async def test_the_project_client_chats_with_streaming_over_a_real_socket(server: ServerProcess, token: str) -> None:
    deltas: list[str] = []

    async def on_stream(delta: str) -> None:
        deltas.append(delta)

    async with ExaiClient(f"{server.ws_url}/ws", token) as client:
        assert "chat" in {tool["name"] for tool in await client.list_tools()}
        result = await client.call_tool("chat", {"prompt": "over the wire"}, on_stream=on_stream)
        await client.ping()
    assert result["text"].startswith("stub reply from kimi-k2.6: over the wire")
    await wait_for(lambda: "".join(deltas) == result["text"])


async def test_a_socket_without_a_token_is_refused_but_stays_open(server: ServerProcess) -> None:
    async with websockets.connect(f"{server.ws_url}/ws") as socket:
        await socket.send(json.dumps({"op": "call_tool", "request_id": "x", "name": "version", "arguments": {}}))
        reply = json.loads(await socket.recv())
        assert (reply["op"], reply["error"]["code"]) == ("call_tool_res", "unauthorized")


async def test_an_oversized_frame_over_daphne_is_refused_and_the_socket_stays_usable(
    server: ServerProcess, token: str
) -> None:
    async with websockets.connect(f"{server.ws_url}/ws?token={token}", max_size=None) as socket:
        # Daphne's own default would drop this 4 MiB frame; under the 16 MiB limit it is served.
        await socket.send(json.dumps({"op": "ping", "pad": "y" * (4 * 1024 * 1024)}))
        assert json.loads(await socket.recv()) == {"op": "pong"}
        await socket.send(json.dumps({"op": "ping", "pad": "y" * (16 * 1024 * 1024 + 1)}))
        assert json.loads(await socket.recv())["error"]["code"] == "invalid_request"
        await socket.send("{bad json")
        assert "malformed JSON" in json.loads(await socket.recv())["error"]["message"]
        await socket.send(json.dumps({"op": "ping"}))
        assert json.loads(await socket.recv()) == {"op": "pong"}


async def test_mcp_over_a_real_websocket_with_the_mcp_subprotocol(server: ServerProcess, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(f"{server.ws_url}/mcp", subprotocols=["mcp"], additional_headers=headers) as socket:
        assert socket.subprotocol == "mcp"
        await socket.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "e2e", "version": "1"},
                    },
                }
            )
        )
        assert json.loads(await socket.recv())["result"]["protocolVersion"] == "2025-11-25"
        await socket.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "chat", "arguments": {"prompt": "mcp ws"}},
                }
            )
        )
        reply = json.loads(await socket.recv())
        assert reply["id"] == 2 and "mcp ws" in reply["result"]["content"][0]["text"]


async def test_rest_over_real_http(server: ServerProcess, token: str) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.post(
            "/api/tools/chat/call/", json={"arguments": {"prompt": "rest e2e", "model": "glm"}}
        )
    assert response.status_code == 200
    assert response.json()["outputs"][0]["metadata"]["provider"] == "glm"


async def test_an_error_in_a_rest_call_is_recorded_with_no_socket_to_flush_it(
    server: ServerProcess, token: str
) -> None:
    marker = "rest-only-error-7f3a"
    async with httpx.AsyncClient(base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.post(
            "/api/tools/chat/call/", json={"arguments": {"prompt": f"{marker} [[stub:status=500]]", "model": "kimi"}}
        )
    assert response.json()["error"]["code"] == "provider_error"

    async def recorded() -> int:
        return await ErrorInvestigation.objects.filter(error_type__endswith="ProviderError").acount()

    deadline = asyncio.get_running_loop().time() + 10
    while not await recorded() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert await recorded() == 1


def run_sdk_client(*args: str) -> dict[str, Any]:
    if not MCP_CLIENT_PYTHON:
        pytest.skip("EXAI_MCP_CLIENT_PYTHON is not set (make test sets it to the mcp 2.x client venv)")
    assert Path(MCP_CLIENT_PYTHON).exists(), f"EXAI_MCP_CLIENT_PYTHON={MCP_CLIENT_PYTHON} does not exist"
    completed = subprocess.run(
        [MCP_CLIENT_PYTHON, str(ROOT / "tests" / "mcp_sdk_client.py"), *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def assert_full_session(report: dict[str, Any], version: str) -> None:
    assert report["protocol_version"] == version
    assert {"chat", "listmodels", "status", "version"} <= set(report["tools"])
    chat = report["chat"]
    assert chat["is_error"] is False
    assert chat["text"].startswith("stub reply from glm-4.6: hello from the sdk")
    assert chat["meta"]["latency_metrics"]["processing_ms"] > 0
    # glm-4.6 thinks: its reasoning reaches the MCP client as progress, apart from the answer.
    assert chat["progress"][0] == "asking glm-4.6"
    assert chat["progress"][1].startswith("reasoning: Let me think about 'hello from the sdk'")
    assert "Let me think" not in chat["text"]
    workflow = report["workflow"]
    assert (workflow["first_status"], workflow["final_status"]) == ("pause_for_debug", "debug_complete")
    assert workflow["required_actions"] and workflow["final_is_error"] is False and workflow["final_provider"]
    assert report["bad_arguments"]["is_error"] is True
    assert report["unknown_tool"] == {"raised": True, "error": "Unknown tool: no_such_tool", "code": -32602}
    # A full MCP citizen: prompts (one per tool), completion, logging, the caller's resources.
    assert set(report["prompts"]) == set(report["tools"])
    assert "EXAI `codereview` tool for this task: the cache layer" in report["codereview_prompt"]
    assert "glm-4.6" in report["model_completion"] and all("glm" in value for value in report["model_completion"])
    thread = f"exai://threads/{chat['continuation_id']}"
    assert thread in report["resources"]
    assert "hello from the sdk" in report["thread_text"] and "stub reply from glm-4.6" in report["thread_text"]


def assert_resources_watched(report: dict[str, Any]) -> None:
    thread = report["chat"]["continuation_id"]
    assert report["templates"] == ["exai://threads/{thread_id}", "exai://files/{file_id}"]
    assert report["thread_completion"] == [thread]
    assert report["updated"] == ["ResourceUpdated", f"exai://threads/{thread}"]


@pytest.mark.parametrize(("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_the_official_sdk_over_streamable_http(
    server: ServerProcess, token: str, mode: str, version: str
) -> None:
    report = await asyncio.to_thread(
        run_sdk_client, "--mode", mode, "--url", f"{server.http_url}/mcp", "--token", token
    )
    assert_full_session(report, version)
    assert_resources_watched(report)


async def test_the_official_sdk_asks_about_a_file_uploaded_over_rest(
    server: ServerProcess, token: str, stub: Any
) -> None:
    source = "def greet(name):\n    return f'hello {name}'\n"
    async with httpx.AsyncClient(base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}) as client:
        uploaded = await client.post("/api/files/", files={"file": ("greet.py", source.encode(), "text/x-python")})
    assert uploaded.status_code == 201, uploaded.text
    args = ["--mode", "auto", "--url", f"{server.http_url}/mcp", "--token", token, "--file-id", uploaded.json()["id"]]
    report = await asyncio.to_thread(run_sdk_client, *args)
    assert report["file_query"]["is_error"] is False
    assert report["file_query"]["text"].startswith("stub reply from kimi-k2.6: what does it do?")
    sent = [m for request in stub.chat_requests() for m in request["payload"]["messages"] if m["role"] == "system"]
    assert any("--- file: greet.py ---\ndef greet(name):" in m["content"] for m in sent)


@pytest.mark.parametrize(("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_the_official_sdk_over_stdio_through_mcp_stdio(
    server: ServerProcess, token: str, mode: str, version: str
) -> None:
    stdio = [sys.executable, str(ROOT / "manage.py"), f"{server.ws_url}/ws"]
    report = await asyncio.to_thread(run_sdk_client, "--mode", mode, "--stdio", *stdio, "--token", token)
    assert_full_session(report, version)


async def test_closing_the_stdio_bridges_input_cancels_its_calls_on_the_server(
    server: ServerProcess, token: str, stub: Any
) -> None:
    from tools_app.management.commands.mcp_stdio import serve_stdio

    reader = asyncio.StreamReader()
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "chat", "arguments": {"prompt": "[[stub:delay=5]]"}},
    }
    reader.feed_data(json.dumps(call).encode() + b"\n")
    written: list[bytes] = []
    bridge = asyncio.ensure_future(serve_stdio(f"{server.ws_url}/ws", token, reader, written.append))
    await wait_for(lambda: stub.in_flight == 1, timeout=5)
    reader.feed_eof()
    await asyncio.wait_for(bridge, timeout=5)
    await wait_for(lambda: stub.aborted == 1, timeout=5)
    assert written == []
