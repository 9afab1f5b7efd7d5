"""Rate limits: REST per user, per address and per login; tool calls per user; frames per socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import access_token
from tests.helpers import call, communicator, connected, frames_until
from tools_app.ratelimit import Gcra
from tools_app.services import tool_call

pytestmark = pytest.mark.django_db(transaction=True)


def test_gcra_lets_a_burst_through_then_one_per_interval() -> None:
    limiter = Gcra(4, 1.0)
    assert [limiter.take(now=10.0) for _ in range(4)] == [0.0] * 4
    assert limiter.take(now=10.0) == pytest.approx(0.25)
    assert limiter.take(now=10.25) == 0.0
    assert limiter.take(now=10.25) == pytest.approx(0.25)
    # Idle for a while: the full burst is back, and no more.
    assert [limiter.take(now=20.0) for _ in range(5)].count(0.0) == 4


def test_a_zero_limit_never_refuses() -> None:
    limiter = Gcra(0, 1.0)
    assert all(limiter.take(now=1.0) == 0.0 for _ in range(1000))


def authorized(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


def test_rest_requests_over_the_user_rate_get_429_overloaded_with_retry_after(
    user: Any, other_user: Any, settings: Any
) -> None:
    settings.EXAI_API_USER_RATE = "3/minute"
    client = authorized(user)
    assert [client.get("/api/tools/").status_code for _ in range(3)] == [200] * 3
    refused = client.get("/api/tools/")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "overloaded" and 0 < error["details"]["retry_after_s"] <= 60
    assert 0 < int(refused["Retry-After"]) <= 60
    assert authorized(other_user).get("/api/tools/").status_code == 200  # someone else's budget


def test_password_logins_are_limited_per_address(user: Any, settings: Any) -> None:
    settings.EXAI_LOGIN_RATE = "2/minute"
    client = APIClient()
    attempts = [
        client.post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json").status_code
        for _ in range(2)
    ]
    assert attempts == [401, 401]
    right = client.post("/api/auth/token/", {"username": "alice", "password": "alice-password-123"}, format="json")
    assert right.status_code == 429 and right.json()["error"]["code"] == "overloaded"


def test_anonymous_requests_to_open_endpoints_are_limited_per_address(settings: Any) -> None:
    # (Endpoints that need a token answer 401 before any limit: DRF checks permissions first.)
    settings.EXAI_API_ANON_RATE = "2/minute"
    client = APIClient()
    statuses = [client.post("/api/auth/token/verify/", {"token": "x"}, format="json").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_a_rate_setting_is_validated(monkeypatch: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from exai_site.env import env_rate

    monkeypatch.setenv("X_RATE", "lots/minute")
    with pytest.raises(ImproperlyConfigured, match="X_RATE"):
        env_rate("X_RATE", "1/second")
    monkeypatch.setenv("X_RATE", "0")
    assert env_rate("X_RATE", "1/second") is None


async def test_tool_calls_over_the_users_rate_are_overloaded_on_every_socket_of_that_user(
    user: Any, other_user: Any, settings: Any
) -> None:
    settings.EXAI_USER_CALLS_PER_MIN = 2
    first, second = await connected(access_token(user)), await connected(access_token(user))
    try:
        assert "error" not in (await call(first, "version", {}, request_id="a"))[-1]
        assert "error" not in (await call(second, "version", {}, request_id="b"))[-1]
        refused = (await call(first, "version", {}, request_id="c"))[-1]
        assert refused["op"] == "call_tool_res" and refused["request_id"] == "c"
        assert refused["error"]["code"] == "overloaded" and refused["error"]["retry_after_s"] == pytest.approx(30, 0.1)
        outcome = await tool_call(user=other_user, name="version", arguments={}, request_id="d")
        assert "error" not in outcome  # the other user's budget is untouched
    finally:
        await first.disconnect()
        await second.disconnect()


async def test_the_users_call_rate_holds_in_redis_across_processes(
    user: Any, redis_settings: Any, settings: Any
) -> None:
    settings.EXAI_USER_CALLS_PER_MIN = 3
    outcomes = [await tool_call(user=user, name="version", arguments={}, request_id=f"r{i}") for i in range(4)]
    assert ["error" in outcome for outcome in outcomes] == [False, False, False, True]
    # The count is Redis's, shared by every process: forgetting this process's counts changes nothing.
    from tools_app.ratelimit import reset_local

    reset_local()
    again = await tool_call(user=user, name="version", arguments={}, request_id="r5")
    assert again["error"]["code"] == "overloaded" and 0 < again["error"]["retry_after_s"] <= 20


def test_a_rest_tool_call_over_the_rate_is_429_with_retry_after(user: Any, settings: Any) -> None:
    settings.EXAI_USER_CALLS_PER_MIN = 1
    client = authorized(user)
    assert client.post("/api/tools/version/call/", {}, format="json").status_code == 200
    refused = client.post("/api/tools/version/call/", {}, format="json")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "overloaded"
    assert int(refused["Retry-After"]) == 60


async def test_frames_over_the_sockets_rate_are_refused_and_the_socket_stays_usable(user: Any, settings: Any) -> None:
    settings.EXAI_WS_FRAMES_PER_S = 5
    settings.EXAI_WS_FRAME_BURST = 3
    comm = await connected(access_token(user))
    try:
        for _ in range(3):
            await comm.send_json_to({"op": "ping"})
        await comm.send_json_to({"op": "ping", "request_id": "p4"})
        await comm.send_json_to({"op": "call_tool", "request_id": "c5", "name": "version", "arguments": {}})
        replies = [await comm.receive_json_from() for _ in range(5)]
        assert [reply["op"] for reply in replies] == ["pong"] * 3 + ["error", "call_tool_res"]
        assert replies[3]["request_id"] == "p4" and replies[3]["error"]["code"] == "overloaded"
        assert 0 < replies[3]["error"]["retry_after_s"] <= 0.2
        assert replies[4]["request_id"] == "c5" and replies[4]["error"]["code"] == "overloaded"
        await asyncio.sleep(0.25)
        await comm.send_json_to({"op": "ping"})
        assert (await comm.receive_json_from())["op"] == "pong"
    finally:
        await comm.disconnect()


async def test_mcp_socket_frames_over_the_rate_get_a_json_rpc_error_and_notifications_nothing(
    user: Any, settings: Any
) -> None:
    settings.EXAI_WS_FRAMES_PER_S = 5
    settings.EXAI_WS_FRAME_BURST = 1
    mcp = communicator("/mcp", token=access_token(user), header=True, subprotocols=["mcp"])
    assert (await mcp.connect())[0]
    try:
        await mcp.send_json_to({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        await mcp.send_json_to({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await mcp.send_json_to({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        first, second = await mcp.receive_json_from(), await mcp.receive_json_from()
        assert first == {"jsonrpc": "2.0", "id": 1, "result": {}}
        assert second["id"] == 2 and second["error"]["code"] == -32029
        assert 0 < second["error"]["data"]["retry_after_s"] <= 0.2
        assert await mcp.receive_nothing(timeout=0.1)
    finally:
        await mcp.disconnect()


async def test_hello_and_list_tools_still_work_under_the_default_limits(user: Any) -> None:
    comm = communicator()
    assert (await comm.connect())[0]
    try:
        await comm.send_json_to({"op": "hello", "token": access_token(user)})
        assert (await comm.receive_json_from())["ok"] is True
        await comm.send_json_to({"op": "list_tools"})
        assert (await frames_until(comm, "list_tools_res"))[-1]["tools"]
    finally:
        await comm.disconnect()
