"""MCP streamable HTTP on POST /mcp, through Django's async test client."""

import json
from typing import Any

import pytest
from django.test import AsyncClient

from tests.helpers import MCP_INITIALIZE

pytestmark = pytest.mark.django_db(transaction=True)

JSON_AND_SSE = "application/json, text/event-stream"
INITIALIZE = MCP_INITIALIZE


async def post(body: Any, token: str | None, accept: str = "application/json", **headers: str) -> Any:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return await AsyncClient().post("/mcp", raw, content_type="application/json", headers={"Accept": accept, **headers})


async def sse_messages(response: Any) -> list[dict[str, Any]]:
    """The messages of an SSE body (the priming event's empty data is none)."""
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ") and line[6:].strip()]


async def test_a_request_without_a_valid_token_is_401_with_a_bearer_challenge() -> None:
    for token in (None, "not.a.jwt"):
        response = await post(INITIALIZE, token)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == -32001


async def test_the_handshake_issues_a_session_that_later_requests_use(token: str) -> None:
    response = await post(INITIALIZE, token)
    assert response.status_code == 200
    session = response["Mcp-Session-Id"]
    assert response.json()["result"]["protocolVersion"] == "2025-06-18"

    initialized = await post(
        {"jsonrpc": "2.0", "method": "notifications/initialized"}, token, **{"Mcp-Session-Id": session}
    )
    assert initialized.status_code == 202

    listing = await post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token, **{"Mcp-Session-Id": session})
    assert {"chat", "listmodels"} <= {tool["name"] for tool in listing.json()["result"]["tools"]}


async def test_an_unknown_session_is_404_so_the_client_initializes_again(token: str) -> None:
    response = await post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token, **{"Mcp-Session-Id": "nope"})
    assert response.status_code == 404


async def test_another_users_session_id_is_404(token: str, other_user: Any) -> None:
    from tests.conftest import access_token

    session = (await post(INITIALIZE, token))["Mcp-Session-Id"]
    response = await post(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, access_token(other_user), **{"Mcp-Session-Id": session}
    )
    assert response.status_code == 404


async def test_delete_ends_the_session(token: str) -> None:
    session = (await post(INITIALIZE, token))["Mcp-Session-Id"]
    client = AsyncClient()
    auth = {"Authorization": f"Bearer {token}"}
    assert (await client.delete("/mcp", headers={**auth, "Mcp-Session-Id": session})).status_code == 204
    assert (await client.delete("/mcp", headers={**auth, "Mcp-Session-Id": session})).status_code == 404


async def test_get_needs_a_session_or_a_stream_to_resume_and_other_methods_are_405(token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    bare = await AsyncClient().get("/mcp", headers={**auth, "Accept": "text/event-stream"})
    assert bare.status_code == 400 and "Mcp-Session-Id" in bare.json()["error"]["message"]
    json_only = await AsyncClient().get("/mcp", headers={**auth, "Accept": "application/json"})
    assert json_only.status_code == 406
    put = await AsyncClient().put("/mcp", headers=auth)
    assert put.status_code == 405 and put["Allow"] == "POST, GET, DELETE"


async def test_a_tool_call_accepting_sse_streams_progress_then_the_result(token: str) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tools/call",
        "params": {"name": "chat", "arguments": {"prompt": "stream me"}, "_meta": {"progressToken": 11}},
    }
    response = await post(call, token, accept=JSON_AND_SSE)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    messages = await sse_messages(response)
    assert messages[0]["method"] == "notifications/progress" and messages[0]["params"]["progressToken"] == 11
    assert messages[-1]["id"] == 5
    assert messages[-1]["result"]["content"][0]["text"].startswith("stub reply from kimi-k2.6: stream me")


async def test_a_tool_call_accepting_only_json_gets_plain_json(token: str) -> None:
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "version", "arguments": {}}}
    response = await post(call, token)
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.json()["result"]["content"][0]["text"])["server"] == "exai"


async def test_stateless_modern_requests_need_no_session(token: str) -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    discover = await post({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}, token)
    assert "2026-07-28" in discover.json()["result"]["supportedVersions"]
    assert "Mcp-Session-Id" not in discover
    listing = await post({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta}}, token)
    assert listing.json()["result"]["resultType"] == "complete"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{broken", 400, -32700),
        (b"\xff\xfe", 400, -32700),
        ({"jsonrpc": "2.0", "id": 1, "method": "nope"}, 200, -32601),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, 200, -32600),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": {}}}, 200, -32602),
    ],
)
async def test_malformed_requests_get_json_rpc_errors(token: str, body: Any, status: int, code: int) -> None:
    response = await post(body, token)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_an_oversized_body_is_refused_with_413(token: str, settings: Any) -> None:
    settings.EXAI_MAX_FRAME_BYTES = 2048
    response = await post({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 4096}}, token)
    assert response.status_code == 413


def progress_messages(messages: list[dict[str, Any]]) -> list[str]:
    return [m["params"]["message"] for m in messages if m.get("method") == "notifications/progress"]


async def test_a_long_answer_streams_to_the_client_as_marked_progress_reasoning_first(token: str) -> None:
    # A thinking model: its reasoning streams first, then the answer, over about two seconds.
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "chat",
            "arguments": {"prompt": "[[stub:words=30]] [[stub:stream_s=2]]", "model": "kimi-k2.6"},
            "_meta": {"progressToken": "p"},
        },
    }
    messages = await sse_messages(await post(call, token, accept=JSON_AND_SSE))
    said = progress_messages(messages)
    reasoning = [m.removeprefix("reasoning: ") for m in said if m.startswith("reasoning: ")]
    answer = [m.removeprefix("answer: ") for m in said if m.startswith("answer: ")]
    assert reasoning and len(answer) >= 2  # a growing answer, not one block at the end
    assert max(i for i, m in enumerate(said) if m.startswith("reasoning: ")) < min(
        i for i, m in enumerate(said) if m.startswith("answer: ")
    )
    final = messages[-1]["result"]["content"][0]["text"]
    assert "".join(answer) == final  # together the progress messages carry the whole answer, in order


async def test_a_silent_provider_still_gives_a_progress_message_every_heartbeat(token: str, settings: Any) -> None:
    settings.EXAI_HEARTBEAT_S = 0.3
    call = {
        "jsonrpc": "2.0",
        "id": 8,
        "method": "tools/call",
        "params": {"name": "chat", "arguments": {"prompt": "[[stub:delay=1.5]]"}, "_meta": {"progressToken": 1}},
    }
    said = progress_messages(await sse_messages(await post(call, token, accept=JSON_AND_SSE)))
    assert sum(message.startswith("working (") for message in said) >= 3
