"""What the assistant can afford and what it can reach: profiles, long replies, the cache, files on
disk, images, web search, threads it lost, its own call log, and threads that outgrow the window."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import pytest
from channels.db import database_sync_to_async

from files_app.blobs import blob_from_chunks
from files_app.services import file_ingest
from tests.conftest import ServerProcess, access_token, database_url, provider_env
from tests.helpers import call, communicator, metadata, run
from tools_app.context_window import estimate_tokens, fit_history
from tools_app.models import Conversation, Message
from tools_app.providers.types import ModelSpec
from tools_app.services import tool_descriptors
from tools_app.turns import flush_turns

pytestmark = pytest.mark.django_db(transaction=True)


# --- Tool profiles -----------------------------------------------------------------


def listed(
    settings: Any, profile: str, enabled: list[str] | None = None, disabled: list[str] | None = None
) -> set[str]:
    settings.EXAI_TOOL_PROFILE = profile
    settings.EXAI_ENABLED_TOOLS, settings.EXAI_DISABLED_TOOLS = enabled or [], disabled or []
    return {tool["name"] for tool in tool_descriptors()}


def test_profiles_change_tools_list(settings: Any) -> None:
    lean, standard, full = (listed(settings, profile) for profile in ("lean", "standard", "full"))
    assert lean < standard < full
    assert {"chat", "codereview", "debug", "thinkdeep", "consensus", "planner", "conversations"} <= lean
    assert "analyze" not in lean and "analyze" in standard and "docgen" not in standard and "docgen" in full
    assert listed(settings, "lean", enabled=["docgen"]) == lean | {"docgen"}
    assert listed(settings, "standard", disabled=["chat", "version", "listmodels"]) == standard - {"chat"}


async def test_a_tool_left_out_of_the_profile_is_still_callable_but_a_disabled_one_is_not(
    user: Any, settings: Any
) -> None:
    settings.EXAI_TOOL_PROFILE = "lean"
    challenged = await run(user, "challenge", {"prompt": "x"})  # not advertised in lean, still there by name
    assert json.loads(challenged["text"])["status"] == "challenge_accepted"
    settings.EXAI_DISABLED_TOOLS = ["challenge", "version"]
    refused = await run(user, "challenge", {"prompt": "x"})
    assert refused["error"]["code"] == "unknown_tool" and "EXAI_DISABLED_TOOLS" in refused["error"]["message"]
    assert "error" not in await run(user, "version", {})  # always on


async def test_mcp_tools_list_follows_the_profile(user: Any, settings: Any) -> None:
    settings.EXAI_TOOL_PROFILE = "lean"
    mcp = communicator("/mcp", token=access_token(user), header=True, subprotocols=["mcp"])
    assert (await mcp.connect())[0]
    await mcp.send_json_to({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    names = {tool["name"] for tool in (await mcp.receive_json_from(timeout=5))["result"]["tools"]}
    await mcp.disconnect()
    assert names == listed(settings, "lean")


# --- Long replies ------------------------------------------------------------------


async def test_a_reply_over_the_limit_is_cut_cleanly_and_the_rest_comes_in_parts(user: Any, settings: Any) -> None:
    settings.EXAI_MAX_RESPONSE_TOKENS = 1000
    first = await run(user, "chat", {"prompt": "[[stub:words=3000]]"})
    meta = metadata(first)
    assert meta["truncated"] is True and '"action": "rest"' in first["text"]
    head = first["text"].split("\n\n[Cut here", 1)[0]
    assert head.endswith(("word", "9")) and estimate_tokens(head) <= 1000  # ends on a whole paragraph
    parts, thread = [head], meta["continuation_id"]
    while True:
        more = await run(user, "conversations", {"action": "rest", "continuation_id": thread})
        text = more["text"]
        parts.append(text.split("\n\n[Cut here", 1)[0])
        if "[Cut here" not in text:
            break
    words = " ".join(parts).split()
    assert words == [f"word{n}" for n in range(3000)]
    gone = await run(user, "conversations", {"action": "rest", "continuation_id": thread})
    assert gone["error"]["code"] == "invalid_arguments"


# --- Response cache ----------------------------------------------------------------


async def test_identical_calls_at_temperature_zero_are_answered_from_the_cache(user: Any, stub: Any) -> None:
    # A model that takes a temperature (Kimi's thinking models pin theirs to 1: never cached).
    arguments = {"prompt": "what is 2+2", "temperature": 0, "model": "moonshot-v1-128k"}
    first, second = await run(user, "chat", arguments), await run(user, "chat", arguments)
    assert metadata(first)["cache_hit"] is False and metadata(second)["cache_hit"] is True
    assert second["text"] == first["text"] and len(stub.chat_requests()) == 1
    await run(user, "chat", {**arguments, "use_cache": False})
    await run(user, "chat", {"prompt": "what is 2+2", "model": "moonshot-v1-128k"})  # no temperature 0: never cached
    assert len(stub.chat_requests()) == 3


async def test_the_cache_is_per_user(user: Any, other_user: Any, stub: Any) -> None:
    arguments = {"prompt": "what is 3+3", "temperature": 0, "model": "glm-5.1"}
    await run(user, "chat", arguments)
    assert metadata(await run(other_user, "chat", arguments))["cache_hit"] is False
    assert len(stub.chat_requests()) == 2


# --- Files on disk (EXAI_ALLOWED_FILE_ROOTS) ----------------------------------------------


@pytest.fixture
def root(tmp_path: Any, settings: Any) -> Any:
    allowed = tmp_path / "project"
    allowed.mkdir()
    (allowed / "app.py").write_text("SECRET_SAUCE = 42\n")
    (tmp_path / "outside.txt").write_text("not yours\n")
    os.symlink(tmp_path / "outside.txt", allowed / "sneaky.txt")
    settings.EXAI_ALLOWED_FILE_ROOTS = [allowed.resolve()]
    return allowed


async def test_a_path_under_an_allowed_root_is_read_into_the_prompt(user: Any, root: Any, stub: Any) -> None:
    metadata(await run(user, "chat", {"prompt": "explain", "files": [str(root / "app.py")]}))
    systems = [m["content"] for m in stub.chat_requests()[-1]["payload"]["messages"] if m["role"] == "system"]
    assert any("SECRET_SAUCE = 42" in text for text in systems)


@pytest.mark.parametrize("escape", ["../outside.txt", "sneaky.txt", "/etc/passwd"])
async def test_paths_escaping_the_roots_are_refused(user: Any, root: Any, stub: Any, escape: str) -> None:
    path = escape if escape.startswith("/") else str(root / escape)
    outcome = await run(user, "chat", {"prompt": "explain", "files": [path]})
    assert outcome["error"]["code"] == "forbidden" and "outside the allowed file roots" in outcome["error"]["message"]
    assert stub.chat_requests() == []


async def test_without_roots_a_path_is_refused_with_what_to_do(user: Any, settings: Any) -> None:
    settings.EXAI_ALLOWED_FILE_ROOTS = []
    outcome = await run(user, "codereview", {**STEP, "relevant_files": ["/etc/hosts"]})
    assert outcome["error"]["code"] == "invalid_arguments" and "upload the file" in outcome["error"]["message"]


STEP = {"step": "s", "step_number": 1, "total_steps": 1, "next_step_required": False, "findings": "f"}


# --- Vision and web search ------------------------------------------------------------

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


async def test_images_go_to_a_vision_model(user: Any, stub: Any) -> None:
    metadata(await run(user, "chat", {"prompt": "what is this", "images": [PNG], "model": "kimi-k2.6"}))
    content = stub.chat_requests()[-1]["payload"]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what is this"}
    assert content[1] == {"type": "image_url", "image_url": {"url": PNG}}


async def test_an_uploaded_image_goes_as_a_data_url(user: Any, stub: Any) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\x01" * 8
    reference = await database_sync_to_async(file_ingest)(
        owner=user, blob=blob_from_chunks([data]), name="shot.png", content_type="image/png"
    )
    metadata(await run(user, "chat", {"prompt": "see", "images": [str(reference.pk)], "model": "kimi-k2.6"}))
    part = stub.chat_requests()[-1]["payload"]["messages"][-1]["content"][1]
    assert part["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(data).decode()


async def test_images_to_a_model_that_cannot_see_name_the_model(user: Any, stub: Any) -> None:
    outcome = await run(user, "chat", {"prompt": "what is this", "images": [PNG], "model": "moonshot-v1-128k"})
    assert outcome["error"]["code"] == "invalid_arguments"
    assert "moonshot-v1-128k cannot read images" in outcome["error"]["message"]
    assert "kimi-k2.6" in outcome["error"]["message"]  # and names the ones that can
    assert stub.chat_requests() == []


async def test_a_malformed_image_data_url_is_refused(user: Any, stub: Any) -> None:
    outcome = await run(user, "chat", {"prompt": "see", "images": ["data:text/html;base64,PGI+"], "model": "kimi-k2.6"})
    assert outcome["error"]["code"] == "invalid_arguments" and "data:image/" in outcome["error"]["message"]
    assert stub.chat_requests() == []


async def test_use_websearch_turns_on_glms_search(user: Any, stub: Any) -> None:
    outcome = await run(user, "chat", {"prompt": "latest Django?", "model": "glm", "use_websearch": True})
    assert metadata(outcome)["web_search"] is True and outcome["text"].startswith("[searched the web]")
    tools = stub.chat_requests()[-1]["payload"]["tools"]
    assert tools[0]["type"] == "web_search"


async def test_use_websearch_runs_kimis_builtin_search_round_trip(user: Any, stub: Any) -> None:
    outcome = await run(user, "chat", {"prompt": "latest Django?", "model": "kimi", "use_websearch": True})
    assert metadata(outcome)["web_search"] is True and outcome["text"].startswith("[searched the web]")
    asked, answered = stub.chat_requests()
    assert asked["payload"]["tools"] == [{"type": "builtin_function", "function": {"name": "$web_search"}}]
    echoed = answered["payload"]["messages"][-2:]
    assert echoed[0]["tool_calls"][0]["function"]["name"] == "$web_search"
    # kimi-k2.6 thinks: its reasoning goes back with its tool call (Moonshot refuses the turn otherwise).
    assert echoed[0]["reasoning_content"].startswith("Let me think")
    assert echoed[1] == {
        "role": "tool",
        "tool_call_id": "call_search",
        "name": "$web_search",
        "content": '{"search_result": {"search_id": "s1"}}',
    }


async def test_use_websearch_is_ignored_where_the_model_has_no_search(user: Any, stub: Any) -> None:
    outcome = await run(user, "chat", {"prompt": "hi", "model": "moonshot-v1-128k", "use_websearch": True})
    assert metadata(outcome)["web_search"] is False and "tools" not in stub.chat_requests()[-1]["payload"]


# --- Threads: conversations, trimming, restarts -----------------------------------------


async def test_conversations_lists_shows_and_deletes_the_callers_threads(user: Any, other_user: Any) -> None:
    thread = metadata(await run(user, "chat", {"prompt": "remember the milk"}))["continuation_id"]
    theirs = metadata(await run(other_user, "chat", {"prompt": "not yours"}))["continuation_id"]
    listing = json.loads((await run(user, "conversations", {"action": "list"}))["text"])
    assert [t["continuation_id"] for t in listing["threads"]] == [thread]
    assert listing["threads"][0]["first_prompt"] == "remember the milk"
    shown = json.loads((await run(user, "conversations", {"action": "show", "continuation_id": thread}))["text"])
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    for action in ("show", "delete"):
        refused = await run(user, "conversations", {"action": action, "continuation_id": theirs})
        assert refused["error"]["code"] == "forbidden"
    await run(user, "conversations", {"action": "delete", "continuation_id": thread})
    assert not await Conversation.objects.filter(pk=thread).aexists()


def test_trimming_keeps_the_newest_turns_that_fit() -> None:
    spec = ModelSpec("tiny", "local", context_window=1000, max_output_tokens=200)
    history = [
        {"role": role, "content": f"{role} turn {n} " + "x" * 400} for n in range(10) for role in ("user", "assistant")
    ]
    fixed = [{"role": "system", "content": "be brief"}]
    kept = fit_history(spec, fixed, history, "the question")  # type: ignore[arg-type]
    assert kept == history[-len(kept) :] and 0 < len(kept) < len(history)
    assert kept[0]["role"] == "user"
    assert sum(estimate_tokens(m["content"]) for m in kept) <= 1000 - 200


async def test_a_thread_past_the_window_drops_its_oldest_turns(user: Any, stub: Any) -> None:
    thread = metadata(await run(user, "chat", {"prompt": "first question"}))["continuation_id"]
    await flush_turns()  # the turn is written just after the answer (tools_app/turns.py)

    def pad() -> None:
        conversation = Conversation.objects.get(pk=thread)
        for n in range(12):  # ~12 x 100k tokens: far past Kimi's 262k window
            for role in ("user", "assistant"):
                Message.objects.create(
                    conversation=conversation, role=role, content=f"{n} " + "y" * 400_000, tool="chat"
                )

    await database_sync_to_async(pad)()
    outcome = await run(user, "chat", {"prompt": "and now?", "continuation_id": thread})
    assert metadata(outcome)["history_turns_dropped"] > 0
    sent = stub.chat_requests()[-1]["payload"]["messages"]
    assert sent[-1]["content"] == "and now?" and "first question" not in json.dumps(sent)
    assert sum(estimate_tokens(str(m["content"])) for m in sent) < 262_144


def test_a_thread_continues_across_a_server_restart(user: Any, provider_stub: Any, file_root: Any) -> None:
    env = {"DATABASE_URL": database_url(), "EXAI_FILE_ROOT": str(file_root), **provider_env(provider_stub)}
    token = access_token(user)

    async def ask(server: ServerProcess, arguments: dict[str, Any]) -> dict[str, Any]:
        from tools_app.client import ExaiClient

        async with ExaiClient(f"{server.ws_url}/ws", token) as client:
            return await client.call_tool("chat", arguments)

    first_server = ServerProcess(env).start()
    try:
        first = asyncio.run(ask(first_server, {"prompt": "the codename is HERON"}))
    finally:
        first_server.stop()
    thread = first["outputs"][0]["metadata"]["continuation_id"]
    second_server = ServerProcess(env).start()
    try:
        second = asyncio.run(ask(second_server, {"prompt": "what was the codename?", "continuation_id": thread}))
    finally:
        second_server.stop()
    assert second["outputs"][0]["metadata"]["continuation_id"] == thread
    sent = provider_stub.chat_requests()[-1]["payload"]["messages"]
    assert any("the codename is HERON" in str(m["content"]) for m in sent)


# --- Own call log (activity, toolcall_log_tail) ------------------------------------------------


async def test_activity_and_the_log_tail_show_only_the_callers_calls(user: Any, other_user: Any) -> None:
    for _ in range(3):
        await run(user, "version", {})
    await run(other_user, "listmodels", {})
    await run(user, "nope", {})
    tail = json.loads((await run(user, "toolcall_log_tail", {"n": 10}))["text"])["calls"]
    assert [c["tool"] for c in tail] == ["nope", "version", "version", "version"]
    assert tail[0]["status"] == "unknown_tool" and all(c["total_latency_ms"] >= 0 for c in tail)
    activity = json.loads((await run(user, "activity", {}))["text"])
    assert {t["tool"]: (t["calls"], t["errors"]) for t in activity["tools"]} == {
        "version": (3, 0),
        "nope": (1, 1),
        "toolcall_log_tail": (1, 0),
    }
    theirs = json.loads((await run(other_user, "toolcall_log_tail", {}))["text"])["calls"]
    assert [c["tool"] for c in theirs] == ["listmodels"]


async def test_the_exai_socket_serves_the_new_tools_too(token: str) -> None:
    comm = communicator("/ws", token=token)
    assert (await comm.connect())[0]
    reply = (await call(comm, "challenge", {"prompt": "x"}))[-1]
    await comm.disconnect()
    assert json.loads(reply["text"])["status"] == "challenge_accepted"


# --- Provider tools -------------------------------------------------------------------------


async def test_glm_web_search_returns_results_with_the_filters_passed_on(user: Any, stub: Any) -> None:
    outcome = await run(
        user,
        "glm_web_search",
        {"query": "django 6 release", "count": 2, "domain": "djangoproject.com", "recency": "oneMonth"},
    )
    results = json.loads(outcome["text"])["results"]
    assert [r["link"] for r in results] == ["https://djangoproject.com/1", "https://djangoproject.com/2"]
    [request] = stub.of_kind("web_search")
    assert (
        request["payload"]["search_recency_filter"] == "oneMonth"
        and request["payload"]["search_engine"] == "search_std"
    )


async def test_glm_web_search_without_glm_says_how_to_enable_it(user: Any, settings: Any) -> None:
    settings.GLM_API_KEY = ""
    outcome = await run(user, "glm_web_search", {"query": "x"})
    assert outcome["error"]["code"] == "provider_unavailable" and "GLM_API_KEY" in outcome["error"]["message"]


async def test_kimi_chat_with_tools_passes_function_calls_through(user: Any, stub: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    asked = await run(
        user,
        "kimi_chat_with_tools",
        {"messages": [{"role": "user", "content": "weather? [[stub:call_tool=get_weather]]"}], "tools": tools},
    )
    answer = json.loads(asked["text"])
    assert answer["finish_reason"] == "tool_calls" and answer["tool_calls"][0]["function"]["name"] == "get_weather"
    assert stub.chat_requests()[-1]["payload"]["tools"] == tools
    bad = await run(user, "kimi_chat_with_tools", {"messages": [], "tools": tools})
    assert bad["error"]["code"] == "invalid_arguments"
