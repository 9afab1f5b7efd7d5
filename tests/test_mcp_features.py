"""MCP beyond tools: prompts, completion, logging and resources (with subscriptions), over the
/mcp WebSocket and streamable HTTP, against the provider stub."""

import asyncio
import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from files_app.services import file_ingest_text
from tests.helpers import MCP_INITIALIZE, communicator
from tools_app.services import tool_descriptors

pytestmark = pytest.mark.django_db(transaction=True)


async def mcp(token: str) -> WebsocketCommunicator:
    comm = communicator("/mcp", token=token, header=True, subprotocols=["mcp"])
    connected, _ = await comm.connect()
    assert connected
    return comm


class Session:
    """One MCP WebSocket session: requests by id, notifications kept aside as they arrive."""

    def __init__(self, comm: WebsocketCommunicator) -> None:
        self.comm = comm
        self.notes: list[dict[str, Any]] = []
        self.next_id = 0

    async def request(self, method: str, params: Any = None, timeout: float = 10) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.comm.send_json_to(message)
        while True:
            reply = await self.comm.receive_json_from(timeout=timeout)
            if reply.get("id") == self.next_id:
                return reply
            self.notes.append(reply)

    async def result(self, method: str, params: Any = None) -> Any:
        reply = await self.request(method, params)
        assert "result" in reply, reply
        return reply["result"]

    async def notes_within(self, seconds: float) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(seconds):
                while True:
                    self.notes.append(await self.comm.receive_json_from(timeout=seconds))
        except TimeoutError:
            pass
        return self.notes


@pytest.fixture
async def session(token: str, stub: Any) -> Any:
    comm = await mcp(token)
    session = Session(comm)
    await session.result("initialize", MCP_INITIALIZE["params"])
    await comm.send_json_to({"jsonrpc": "2.0", "method": "notifications/initialized"})
    yield session
    await comm.disconnect()


# --- Prompts -----------------------------------------------------------------------------------


async def test_there_is_one_prompt_per_advertised_tool_following_the_profile(session: Session, settings: Any) -> None:
    prompts = (await session.result("prompts/list"))["prompts"]
    assert [prompt["name"] for prompt in prompts] == [tool["name"] for tool in tool_descriptors()]
    assert all(prompt["description"] for prompt in prompts)
    settings.EXAI_TOOL_PROFILE = "lean"
    lean = (await session.result("prompts/list"))["prompts"]
    assert [prompt["name"] for prompt in lean] == [tool["name"] for tool in tool_descriptors()]
    assert len(lean) < len(prompts)


async def test_a_workflow_prompt_takes_a_task_and_files_and_explains_how_to_step(session: Session) -> None:
    prompts = {prompt["name"]: prompt for prompt in (await session.result("prompts/list"))["prompts"]}
    assert prompts["codereview"]["arguments"] == [
        {"name": "task", "description": "What to look at: the code, the bug, the question.", "required": True},
        {"name": "files", "description": "Files or folders to start from (comma-separated).", "required": False},
    ]
    got = await session.result(
        "prompts/get", {"name": "codereview", "arguments": {"task": "the login view", "files": "/src/a.py, /src/b.py"}}
    )
    text = got["messages"][0]["content"]["text"]
    assert got["messages"][0]["role"] == "user"
    assert "EXAI `codereview` tool for this task: the login view" in text
    assert '"relevant_files": [\n    "/src/a.py",\n    "/src/b.py"\n  ]' in text
    assert "next_step_required` to false" in text and "continuation_id" in text


async def test_a_plain_prompt_asks_for_the_call_with_typed_arguments(session: Session) -> None:
    prompts = {prompt["name"]: prompt for prompt in (await session.result("prompts/list"))["prompts"]}
    assert [(arg["name"], arg["required"]) for arg in prompts["consensus"]["arguments"]] == [
        ("prompt", True),
        ("models", True),
        ("model", False),
        ("files", False),
        ("continuation_id", False),
    ]
    got = await session.result(
        "prompts/get", {"name": "consensus", "arguments": {"prompt": "tabs?", "models": "kimi, glm"}}
    )
    call = json.loads(got["messages"][0]["content"]["text"].split("```json\n")[1].split("\n```")[0])
    assert call == {"prompt": "tabs?", "models": ["kimi", "glm"]}
    listmodels = await session.result("prompts/get", {"name": "listmodels"})
    assert listmodels["messages"][0]["content"]["text"].startswith("Call the EXAI `listmodels` tool (no arguments)")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"name": "codereview", "arguments": {}}, "needs the argument 'task'"),
        ({"name": "chat", "arguments": {"prompt": "x", "colour": "red"}}, "takes no argument 'colour'"),
        ({"name": "chat", "arguments": {"prompt": 7}}, "needs the argument 'prompt'"),
        ({"name": "no_such_prompt"}, "unknown prompt 'no_such_prompt'"),
        ({"arguments": {}}, "needs a name"),
    ],
)
async def test_a_bad_prompt_request_is_invalid_params_saying_why(session: Session, params: Any, needle: str) -> None:
    error = (await session.request("prompts/get", params))["error"]
    assert error["code"] == -32602 and needle in error["message"]


# --- Completion --------------------------------------------------------------------------------


async def complete(session: Session, ref: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    return (await session.result("completion/complete", {"ref": ref, "argument": {"name": name, "value": value}}))[
        "completion"
    ]


async def test_model_names_complete_from_the_live_catalogue(session: Session) -> None:
    found = await complete(session, {"type": "ref/prompt", "name": "chat"}, "model", "kimi")
    assert "kimi" in found["values"] and "kimi-k2.6" in found["values"]
    assert all("kimi" in value for value in found["values"]) and found["hasMore"] is False
    assert found["total"] == len(found["values"])
    glm = await complete(session, {"type": "ref/prompt", "name": "chat"}, "model", "GLM-4")
    assert glm["values"] and all(value.startswith("glm-4") for value in glm["values"])


async def test_thread_ids_complete_for_their_owner_only(session: Session, user: Any, other_user: Any) -> None:
    mine = await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "remember me"}})
    thread = mine["_meta"]["continuation_id"]
    from tests.helpers import run

    theirs = (await run(other_user, "chat", {"prompt": "not yours"}))["outputs"][0]["metadata"]["continuation_id"]
    by_prompt = await complete(session, {"type": "ref/prompt", "name": "chat"}, "continuation_id", thread[:4])
    assert by_prompt["values"] == [thread]
    template = {"type": "ref/resource", "uri": "exai://threads/{thread_id}"}
    assert (await complete(session, template, "thread_id", ""))["values"] == [thread]
    assert (await complete(session, template, "thread_id", theirs[:8]))["values"] == []


async def test_an_unknown_ref_completes_to_nothing_and_a_malformed_one_is_invalid(session: Session) -> None:
    assert (await complete(session, {"type": "ref/prompt", "name": "nope"}, "x", "a"))["values"] == []
    error = await session.request("completion/complete", {"ref": {"type": "ref/tool"}, "argument": {"name": "a"}})
    assert error["error"]["code"] == -32602


# --- Logging -----------------------------------------------------------------------------------


RATE_LIMITED_ONCE = "busy [[stub:fail_first=1]] [[stub:fail_status=429]] [[stub:retry_after=0.2]]"


async def test_a_provider_retry_reaches_the_client_as_a_log_message(session: Session) -> None:
    result = await session.result("tools/call", {"name": "chat", "arguments": {"prompt": RATE_LIMITED_ONCE}})
    assert result["isError"] is False
    logs = [note["params"] for note in session.notes if note.get("method") == "notifications/message"]
    assert logs == [
        {"level": "warning", "logger": "exai.kimi", "data": "Moonshot Kimi answered 429; trying again in 0.2s"}
    ]


async def test_set_level_filters_log_messages_and_refuses_unknown_levels(session: Session) -> None:
    assert await session.result("logging/setLevel", {"level": "error"}) == {}
    await session.result("tools/call", {"name": "chat", "arguments": {"prompt": RATE_LIMITED_ONCE + " again"}})
    assert not [note for note in session.notes if note.get("method") == "notifications/message"]
    error = (await session.request("logging/setLevel", {"level": "loud"}))["error"]
    assert error["code"] == -32602 and "debug, info, notice, warning" in error["message"]


async def test_a_throttle_wait_is_logged_at_info(session: Session, settings: Any) -> None:
    settings.EXAI_KIMI_MAX_CONCURRENCY = 1
    # A call that holds Kimi's one slot for a while, sent without waiting for its answer.
    slow = {"name": "chat", "arguments": {"prompt": "first [[stub:delay=0.5]]"}}
    await session.comm.send_json_to({"jsonrpc": "2.0", "id": 900, "method": "tools/call", "params": slow})
    await asyncio.sleep(0.1)
    await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "second"}})
    logs = [note["params"] for note in session.notes if note.get("method") == "notifications/message"]
    waits = [log for log in logs if log["data"].startswith("throttled: waited")]
    # The one Kimi slot is also this user's whole share of it: the wait shows as theirs.
    assert waits and waits[0]["level"] == "info" and waits[0]["logger"] == "exai.kimi"


# --- Resources ---------------------------------------------------------------------------------


async def test_threads_and_files_are_the_callers_resources(session: Session, user: Any, other_user: Any) -> None:
    chat = await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "what is a monad?"}})
    thread = chat["_meta"]["continuation_id"]
    from channels.db import database_sync_to_async

    mine = await database_sync_to_async(file_ingest_text)(owner=user, text="print('hi')\n", name="hello.py")
    theirs = await database_sync_to_async(file_ingest_text)(owner=other_user, text="secret\n", name="theirs.txt")

    listed = (await session.result("resources/list"))["resources"]
    uris = [resource["uri"] for resource in listed]
    assert uris == [f"exai://threads/{thread}", f"exai://files/{mine.pk}"]
    assert listed[0]["name"] == "chat: what is a monad?" and listed[0]["mimeType"] == "text/markdown"
    assert listed[1]["name"] == "hello.py" and listed[1]["size"] == 12

    read = (await session.result("resources/read", {"uri": uris[0]}))["contents"][0]
    assert read["uri"] == uris[0] and read["mimeType"] == "text/markdown"
    assert "what is a monad?" in read["text"] and "stub reply from kimi-k2.6" in read["text"]
    assert (await session.result("resources/read", {"uri": uris[1]}))["contents"][0]["text"] == "print('hi')\n"

    for uri in (f"exai://files/{theirs.pk}", "exai://threads/not-a-uuid", "file:///etc/passwd"):
        error = (await session.request("resources/read", {"uri": uri}))["error"]
        assert error == {"code": -32002, "message": "Resource not found", "data": {"uri": uri}}

    templates = (await session.result("resources/templates/list"))["resourceTemplates"]
    assert [template["uriTemplate"] for template in templates] == [
        "exai://threads/{thread_id}",
        "exai://files/{file_id}",
    ]


async def test_a_binary_file_reads_as_base64_and_a_large_one_points_to_rest(
    session: Session, user: Any, settings: Any
) -> None:
    from channels.db import database_sync_to_async

    from files_app.blobs import blob_from_chunks
    from files_app.services import file_ingest
    from tools_app import mcp_resources

    def ingest(data: bytes, name: str) -> Any:
        return file_ingest(owner=user, blob=blob_from_chunks([data]), name=name, content_type="image/png")

    png = await database_sync_to_async(ingest)(b"\x89PNG\r\n\x1a\n\x00\xff", "dot.png")
    read = (await session.result("resources/read", {"uri": f"exai://files/{png.pk}"}))["contents"][0]
    assert read == {"uri": f"exai://files/{png.pk}", "mimeType": "image/png", "blob": "iVBORw0KGgoA/w=="}
    mcp_resources.MAX_READ_BYTES, before = 4, mcp_resources.MAX_READ_BYTES
    try:
        error = (await session.request("resources/read", {"uri": f"exai://files/{png.pk}"}))["error"]
    finally:
        mcp_resources.MAX_READ_BYTES = before
    assert error["code"] == -32602 and f"/api/files/{png.pk}/content/" in error["message"]


async def test_resources_list_pages_with_a_cursor(session: Session, user: Any, monkeypatch: Any) -> None:
    from channels.db import database_sync_to_async

    from tools_app import mcp_resources

    monkeypatch.setattr(mcp_resources, "PAGE_SIZE", 2)
    for n in range(3):
        await database_sync_to_async(file_ingest_text)(owner=user, text=f"file {n}\n", name=f"f{n}.txt")
    first = await session.result("resources/list")
    second = await session.result("resources/list", {"cursor": first["nextCursor"]})
    assert [r["name"] for r in first["resources"] + second["resources"]] == ["f2.txt", "f1.txt", "f0.txt"]
    assert "nextCursor" not in second
    bad = (await session.request("resources/list", {"cursor": "garbage!"}))["error"]
    assert bad["code"] == -32602


async def test_a_subscribed_thread_announces_its_new_turns_until_unsubscribed(session: Session) -> None:
    chat = await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "first"}})
    thread = chat["_meta"]["continuation_id"]
    uri = f"exai://threads/{thread}"
    assert await session.result("resources/subscribe", {"uri": uri}) == {}
    await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "second", "continuation_id": thread}})
    notes = await session.notes_within(2)
    updated = [note for note in notes if note.get("method") == "notifications/resources/updated"]
    assert updated == [{"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}}]

    session.notes.clear()
    assert await session.result("resources/unsubscribe", {"uri": uri}) == {}
    await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "third", "continuation_id": thread}})
    new_thread = await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "a new thread"}})
    assert new_thread["isError"] is False
    notes = await session.notes_within(2)
    assert not [note for note in notes if note.get("method") == "notifications/resources/updated"]
    # Resources were looked at, so the session hears that the list changed (a new thread).
    assert {"jsonrpc": "2.0", "method": "notifications/resources/list_changed", "params": {}} in notes


async def test_a_session_watches_a_bounded_number_of_resources(session: Session, monkeypatch: Any) -> None:
    from tools_app import mcp_protocol

    monkeypatch.setattr(mcp_protocol, "MAX_SUBSCRIPTIONS", 3)
    for index in range(3):
        assert await session.result("resources/subscribe", {"uri": f"exai://threads/t{index}"}) == {}
    assert await session.result("resources/subscribe", {"uri": "exai://threads/t0"}) == {}  # already watched
    refused = await session.request("resources/subscribe", {"uri": "exai://threads/t3"})
    assert refused["error"]["code"] == -32602 and "at most 3" in refused["error"]["message"]
    assert await session.result("resources/unsubscribe", {"uri": "exai://threads/t1"}) == {}
    assert await session.result("resources/subscribe", {"uri": "exai://threads/t3"}) == {}


async def test_another_users_changes_are_never_announced(session: Session, other_user: Any) -> None:
    from tests.helpers import run

    await session.result("resources/list")
    outcome = await run(other_user, "chat", {"prompt": "private"})
    assert "outputs" in outcome
    notes = await session.notes_within(1.5)
    assert not [note for note in notes if note.get("method", "").startswith("notifications/resources")]


# --- The same over streamable HTTP -------------------------------------------------------------


async def http(body: Any, token: str, **headers: str) -> Any:
    return await AsyncClient().post(
        "/mcp",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream", **headers},
    )


async def sse(response: Any) -> list[dict[str, Any]]:
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ") and line[6:].strip()]


async def test_an_http_session_keeps_its_log_level_between_requests(token: str, stub: Any) -> None:
    session_id = (await http(MCP_INITIALIZE, token))["Mcp-Session-Id"]
    headers = {"Mcp-Session-Id": session_id}
    quiet = await http(
        {"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "error"}}, token, **headers
    )
    assert quiet.json()["result"] == {}

    def call(n: int) -> dict[str, Any]:
        arguments = {"prompt": f"{RATE_LIMITED_ONCE} {n}"}
        return {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "chat", "arguments": arguments}}

    messages = await sse(await http(call(3), token, **headers))
    assert messages[-1]["result"]["isError"] is False
    assert not [m for m in messages if m.get("method") == "notifications/message"]
    await http(
        {"jsonrpc": "2.0", "id": 4, "method": "logging/setLevel", "params": {"level": "debug"}}, token, **headers
    )
    messages = await sse(await http(call(5), token, **headers))
    assert [m["params"]["level"] for m in messages if m.get("method") == "notifications/message"] == ["warning"]


async def test_an_http_sessions_get_stream_announces_what_it_subscribed_to(token: str, user: Any, stub: Any) -> None:
    session_id = (await http(MCP_INITIALIZE, token))["Mcp-Session-Id"]
    headers = {"Mcp-Session-Id": session_id}
    chat = await http(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "chat", "arguments": {"prompt": "hi"}}},
        token,
        **headers,
    )
    thread = (await sse(chat))[-1]["result"]["_meta"]["continuation_id"]
    uri = f"exai://threads/{thread}"
    subscribed = await http(
        {"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": uri}}, token, **headers
    )
    assert subscribed.json()["result"] == {}

    stream = await AsyncClient().get(
        "/mcp", headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream", **headers}
    )
    assert stream.status_code == 200 and stream["Content-Type"] == "text/event-stream"
    chunks = stream.streaming_content.__aiter__()
    assert (await anext(chunks)).startswith(b"retry: ")
    more = {"name": "chat", "arguments": {"prompt": "again", "continuation_id": thread}}
    await sse(await http({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": more}, token, **headers))
    seen = b""
    async with asyncio.timeout(5):
        while b"notifications/resources/updated" not in seen:
            seen += await anext(chunks)
    assert json.loads(seen.split(b"data: ")[-1]) == {
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {"uri": uri},
    }
    await chunks.aclose()


async def test_circuit_changes_a_call_meets_are_logged(session: Session, settings: Any) -> None:
    settings.EXAI_CIRCUIT_COOLDOWN_S = 0.3
    for index in range(5):
        down = await session.result(
            "tools/call", {"name": "chat", "arguments": {"prompt": f"down {index} [[stub:status=503]]"}}
        )
        assert down["isError"] is True
    refused = await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "anyone there?"}})
    assert refused["_meta"]["error"]["code"] == "provider_unavailable"
    await asyncio.sleep(0.35)
    back = await session.result("tools/call", {"name": "chat", "arguments": {"prompt": "back?"}})
    assert back["isError"] is False
    logs = [note["params"] for note in session.notes if note.get("method") == "notifications/message"]
    said = [(log["level"], log["data"]) for log in logs]
    assert said[0][0] == "error" and "its circuit is open, retry in" in said[0][1]
    assert said[1:] == [
        ("notice", "Moonshot Kimi's circuit is half-open: this request is its probe"),
        ("notice", "Moonshot Kimi passed its circuit's probe: the circuit closes"),
    ]
