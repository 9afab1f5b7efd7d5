"""The EXAI WebSocket protocol on /ws, driven through the real ASGI application."""

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from tests.conftest import access_token
from tests.helpers import call, communicator, connected, frames_until, wait_for
from tools_app.throttle import get_throttle

pytestmark = pytest.mark.django_db(transaction=True)

# The contract's four, and the two waits this server also measures.
LATENCY_KEYS = {
    "total_latency_ms",
    "global_sem_wait_ms",
    "provider_sem_wait_ms",
    "processing_ms",
    "user_sem_wait_ms",
    "conversation_wait_ms",
}


async def test_hello_with_a_valid_token_is_acknowledged_with_a_session_id(token: str) -> None:
    comm = await connected()
    await comm.send_json_to({"op": "hello", "token": token, "session_id": "my-session"})
    assert await comm.receive_json_from() == {"op": "hello_ack", "ok": True, "session_id": "my-session"}
    await comm.disconnect()


async def test_a_tampered_token_is_refused_and_the_socket_closed_with_4401(token: str) -> None:
    comm = await connected()
    header, payload, signature = token.split(".")
    await comm.send_json_to({"op": "hello", "token": f"{header}.{payload}.{signature[::-1]}"})
    ack = await comm.receive_json_from()
    assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"
    assert (await comm.receive_output())["code"] == 4401


async def test_an_expired_token_is_refused(user: Any) -> None:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    comm = await connected()
    await comm.send_json_to({"op": "hello", "token": str(token)})
    ack = await comm.receive_json_from()
    assert ack["ok"] is False and "expired" in ack["error"]["message"]


async def test_without_a_token_every_call_is_refused_and_nothing_runs(stub: Any) -> None:
    comm = await connected()
    [reply] = await call(comm, "chat", {"prompt": "hi"})
    assert reply == {
        "op": "call_tool_res",
        "request_id": "r1",
        "error": {"code": "unauthorized", "message": reply["error"]["message"]},
    }
    await comm.send_json_to({"op": "list_tools"})
    assert (await comm.receive_json_from())["error"]["code"] == "unauthorized"
    assert stub.chat_requests() == []
    await comm.disconnect()


@pytest.mark.parametrize("header", [True, False], ids=["authorization-header", "query-token"])
async def test_a_token_in_the_header_or_query_authenticates_without_hello(token: str, header: bool) -> None:
    comm = await connected(token, header=header)
    await comm.send_json_to({"op": "ping"})
    assert await comm.receive_json_from() == {"op": "pong"}
    await comm.disconnect()


async def test_list_tools_describes_each_tool_with_a_schema(token: str) -> None:
    comm = await connected(token)
    await comm.send_json_to({"op": "list_tools"})
    reply = await comm.receive_json_from()
    tools = {tool["name"]: tool for tool in reply["tools"]}
    assert {"chat", "listmodels", "version", "status"} <= set(tools)
    assert tools["chat"]["inputSchema"]["required"] == ["prompt"]
    await comm.disconnect()


async def test_a_chat_call_is_acked_streamed_and_answered_with_latency_metrics(token: str, stub: Any) -> None:
    comm = await connected(token)
    frames = await call(comm, "chat", {"prompt": "explain WAL", "model": "glm-4.6"})
    ops = [frame["op"] for frame in frames]
    assert ops[0] == "call_tool_ack" and ops[-1] == "call_tool_res"
    assert frames[0]["accepted"] is True and frames[0]["timeout_s"] > 0
    assert all(frame["request_id"] == "r1" for frame in frames)
    deltas = [frame["delta"] for frame in frames if frame["op"] == "stream" and "kind" not in frame]
    # glm-4.6 thinks first: its reasoning streams apart, marked, and stays out of the answer.
    thoughts = [frame["delta"] for frame in frames if frame["op"] == "stream" and frame.get("kind") == "reasoning"]
    result = frames[-1]
    [output] = result["outputs"]
    assert result["text"] == output["text"] == "".join(deltas)
    assert output["text"].startswith("stub reply from glm-4.6: explain WAL")
    assert "".join(thoughts).startswith("Let me think about 'explain WAL'") and "think" not in output["text"]
    assert output["metadata"]["reasoning_tokens"] > 0
    metadata = output["metadata"]
    assert set(metadata["latency_metrics"]) == LATENCY_KEYS
    assert metadata["latency_metrics"]["total_latency_ms"] >= metadata["latency_metrics"]["processing_ms"] > 0
    assert (metadata["provider"], metadata["model"], metadata["cache_hit"]) == ("glm", "glm-4.6", False)
    assert metadata["continuation_id"]
    await comm.disconnect()


async def test_malformed_frames_get_clear_errors_and_the_socket_stays_usable(token: str) -> None:
    comm = await connected(token)
    bad_frames: list[tuple[Any, str]] = [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"op": "launch_missiles"}), "unknown op"),
        (json.dumps({"no_op": 1}), "unknown op"),
        (json.dumps({"op": "call_tool", "name": "chat"}), "request_id"),
        (json.dumps({"op": "cancel", "request_id": "nothing"}), "no call in flight"),
    ]
    for frame, message in bad_frames:
        await comm.send_to(text_data=frame)
        reply = await comm.receive_json_from()
        assert reply["op"] == "error" and reply["error"]["code"] == "invalid_request"
        assert message in reply["error"]["message"]
    await comm.send_to(bytes_data=b"\x00\x01")
    assert "binary" in (await comm.receive_json_from())["error"]["message"]
    await comm.send_json_to({"op": "ping"})
    assert await comm.receive_json_from() == {"op": "pong"}
    await comm.disconnect()


async def test_an_error_reply_names_the_request_id_when_it_is_known(token: str) -> None:
    comm = await connected(token)
    await comm.send_json_to({"op": "bogus", "request_id": "abc"})
    reply = await comm.receive_json_from()
    assert (reply["op"], reply["request_id"]) == ("error", "abc")
    await comm.disconnect()


async def test_a_frame_over_16_mib_is_refused_and_the_socket_stays_usable(token: str) -> None:
    comm = await connected(token)
    await comm.send_to(text_data=json.dumps({"op": "ping", "pad": "x" * (16 * 1024 * 1024)}))
    reply = await comm.receive_json_from()
    assert reply["error"]["code"] == "invalid_request" and "over the limit" in reply["error"]["message"]
    await comm.send_json_to({"op": "ping"})
    assert await comm.receive_json_from() == {"op": "pong"}
    await comm.disconnect()


@pytest.mark.parametrize(
    ("name", "arguments", "code", "fragment"),
    [
        ("chat", {"prompt": "hi", "temperature": "hot"}, "invalid_arguments", "temperature"),
        ("chat", {"prompt": 42}, "invalid_arguments", "prompt"),
        ("chat", {}, "invalid_arguments", "'prompt' is a required property"),
        ("chat", {"prompt": "hi", "colour": "red"}, "invalid_arguments", "colour"),
        ("chat", ["not", "an", "object"], "invalid_arguments", "JSON object"),
        ("chat", {"prompt": "hi", "model": "gpt-99"}, "invalid_arguments", "unknown model 'gpt-99'"),
        ("teleport", {}, "unknown_tool", "unknown tool 'teleport'"),
    ],
)
async def test_bad_calls_fail_before_any_provider_request(
    token: str, stub: Any, name: str, arguments: Any, code: str, fragment: str
) -> None:
    comm = await connected(token)
    result = (await call(comm, name, arguments))[-1]
    assert result["error"]["code"] == code
    assert fragment in result["error"]["message"]
    assert stub.chat_requests() == []
    await comm.disconnect()


async def test_a_model_of_an_unconfigured_provider_is_unavailable(token: str, settings: Any) -> None:
    settings.KIMI_API_KEY = ""
    comm = await connected(token)
    result = (await call(comm, "chat", {"prompt": "hi", "model": "kimi"}))[-1]
    assert result["error"]["code"] == "provider_unavailable"
    assert "KIMI_API_KEY" in result["error"]["message"]
    await comm.disconnect()


async def test_a_provider_failure_is_a_provider_error(token: str) -> None:
    comm = await connected(token)
    result = (await call(comm, "chat", {"prompt": "boom [[stub:status=400]]"}))[-1]
    assert result["error"]["code"] == "provider_error"
    assert "HTTP 400" in result["error"]["message"]
    await comm.disconnect()


async def test_a_slow_provider_fails_with_a_clear_timeout(token: str, settings: Any) -> None:
    settings.EXAI_KIMI_TIMEOUT_S = 0.2
    comm = await connected(token)
    result = (await call(comm, "chat", {"prompt": "slow [[stub:delay=3]]"}))[-1]
    assert result["error"]["code"] == "timeout"
    assert "Moonshot Kimi said nothing for 0.2s" in result["error"]["message"]
    await comm.disconnect()


async def test_cancel_aborts_the_provider_request_and_frees_its_slots(token: str, stub: Any) -> None:
    comm = await connected(token)
    await comm.send_json_to(
        {"op": "call_tool", "request_id": "slow", "name": "chat", "arguments": {"prompt": "[[stub:delay=5]]"}}
    )
    await wait_for(lambda: stub.in_flight == 1)
    await comm.send_json_to({"op": "cancel", "request_id": "slow"})
    result = (await frames_until(comm, "call_tool_res"))[-1]
    assert result["error"]["code"] == "cancelled" and result["request_id"] == "slow"
    await wait_for(lambda: stub.aborted == 1)
    throttle = await get_throttle().snapshot()
    assert throttle["global"]["in_use"] == 0 and throttle["providers"]["kimi"]["in_use"] == 0
    await comm.disconnect()


async def test_closing_the_socket_aborts_its_calls_when_there_is_no_resume_grace(
    token: str, stub: Any, settings: Any
) -> None:
    settings.EXAI_RESUME_GRACE_S = 0
    comm = await connected(token)
    await comm.send_json_to(
        {"op": "call_tool", "request_id": "a", "name": "chat", "arguments": {"prompt": "[[stub:delay=5]]"}}
    )
    await wait_for(lambda: stub.in_flight == 1)
    await comm.disconnect()
    await wait_for(lambda: stub.aborted == 1)
    assert (await get_throttle().snapshot())["global"]["in_use"] == 0


async def test_heartbeats_arrive_while_a_call_runs(token: str, settings: Any) -> None:
    settings.EXAI_HEARTBEAT_S = 0.1
    comm = await connected(token)
    frames = await call(comm, "chat", {"prompt": "[[stub:delay=0.55]]"})
    heartbeats = [frame for frame in frames if frame["op"] == "progress" and frame["message"].startswith("working")]
    assert len(heartbeats) >= 3
    assert frames[-1]["outputs"]
    await comm.disconnect()


async def test_a_repeated_request_id_returns_the_first_result_without_running_again(token: str, stub: Any) -> None:
    comm = await connected()
    await comm.send_json_to({"op": "hello", "token": token, "session_id": "s-1"})
    await comm.receive_json_from()
    first = (await call(comm, "chat", {"prompt": "once"}, request_id="same"))[-1]
    await comm.disconnect()

    # The same session after a reconnect: the retry is answered from the first result.
    comm = await connected()
    await comm.send_json_to({"op": "hello", "token": token, "session_id": "s-1"})
    await comm.receive_json_from()
    second = (await call(comm, "chat", {"prompt": "once"}, request_id="same"))[-1]
    assert second == first
    assert len(stub.chat_requests()) == 1
    await comm.disconnect()


async def test_two_calls_in_flight_on_one_socket_each_get_their_own_result(token: str) -> None:
    comm = await connected(token)
    for request_id, prompt in [("slow", "first [[stub:delay=0.3]]"), ("fast", "second")]:
        await comm.send_json_to(
            {"op": "call_tool", "request_id": request_id, "name": "chat", "arguments": {"prompt": prompt}}
        )
    results: dict[str, Any] = {}
    while len(results) < 2:
        frame = await comm.receive_json_from(timeout=5)
        if frame["op"] == "call_tool_res":
            results[frame["request_id"]] = frame
    assert "first" in results["slow"]["text"] and "second" in results["fast"]["text"]
    await comm.disconnect()


async def test_health_reports_providers_and_throttle(token: str) -> None:
    comm = await connected(token)
    await comm.send_json_to({"op": "health"})
    reply = await comm.receive_json_from()
    assert reply["op"] == "health_res"
    assert {p["provider"]: p["configured"] for p in reply["providers"]} == {
        "kimi": True,
        "glm": True,
        "local": False,
    }
    assert reply["throttle"]["global"]["limit"] == 24
    await comm.disconnect()


async def test_a_token_that_expires_on_an_open_socket_stops_being_served(user: Any) -> None:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    comm = await connected()
    await comm.send_json_to({"op": "hello", "token": str(token)})
    assert (await comm.receive_json_from())["ok"] is True
    await asyncio.sleep(1.1)
    [reply] = await call(comm, "version", {})
    assert reply["error"]["code"] == "unauthorized" and "expired" in reply["error"]["message"]
    assert (await comm.receive_output())["code"] == 4401


async def test_each_user_only_ever_sees_their_own_results(user: Any, other_user: Any) -> None:
    comms = [await connected(access_token(u)) for u in (user, other_user)]
    for index, comm in enumerate(comms):
        await comm.send_json_to(
            {
                "op": "call_tool",
                "request_id": "same-id",
                "name": "chat",
                "arguments": {"prompt": f"user {index}"},
            }
        )
    for index, comm in enumerate(comms):
        result = (await frames_until(comm, "call_tool_res"))[-1]
        assert f"user {index}" in result["text"]
        await comm.disconnect()


async def test_a_socket_path_other_than_the_known_ones_is_refused_at_the_handshake(token: str) -> None:
    # Refused (HTTP 403 under a server), not an exception inside the application.
    comm = communicator("/nowhere", token=token)
    connected, _ = await comm.connect()
    assert connected is False
    assert await comm.receive_nothing()


async def test_a_call_that_cannot_get_a_slot_in_time_is_overloaded(token: str, settings: Any, stub: Any) -> None:
    settings.EXAI_KIMI_MAX_CONCURRENCY = 1
    settings.EXAI_QUEUE_TIMEOUT_S = 0.2
    comm = await connected(token)
    await comm.send_json_to(
        {"op": "call_tool", "request_id": "holder", "name": "chat", "arguments": {"prompt": "[[stub:delay=1]]"}}
    )
    await wait_for(lambda: stub.in_flight == 1)
    result = (await call(comm, "chat", {"prompt": "me too"}, request_id="waiter"))[-1]
    assert result["error"]["code"] == "overloaded" and "0.2s" in result["error"]["message"]
    holder = [f for f in await frames_until(comm, "call_tool_res") if f["op"] == "call_tool_res"][-1]
    assert holder["request_id"] == "holder" and "outputs" in holder
    assert len(stub.chat_requests()) == 1
    await comm.disconnect()


async def test_the_tool_deadline_fires_before_the_servers_reply_deadline(token: str, settings: Any) -> None:
    settings.EXAI_TOOL_TIMEOUT_S = 0.3  # below the provider's own 25 s: the tool layer must answer
    comm = await connected(token)
    frames = await call(comm, "chat", {"prompt": "[[stub:delay=3]]"})
    assert frames[0]["timeout_s"] > 0.3  # the server's deadline, announced in the ack, sits above
    error = frames[-1]["error"]
    assert error["code"] == "timeout"
    assert "deadline of 0.3s passed before kimi-k2.6 began its answer" in error["message"]
    await comm.disconnect()


async def test_health_websocket_reports_connections_throttle_and_circuits(token: str) -> None:
    from django.test import AsyncClient

    comm = await connected(token)
    body = (await AsyncClient().get("/health/websocket/")).json()
    assert body["status"] == "ok" and body["connections"] == 1
    assert body["throttle"]["providers"]["kimi"] == {"in_use": 0, "waiting": 0, "limit": 6}
    assert body["circuits"]["kimi"]["state"] == "closed"
    await comm.disconnect()
