"""Hostile input through the transports: lone surrogates, unbounded text fields, endless workflow steps."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import AsyncClient, Client
from django.utils import timezone
from rest_framework.test import APIClient

from errors_app.capture import capture_exception, flush_errors
from errors_app.models import ErrorInvestigation
from metrics_app.models import LatencySample
from metrics_app.recorder import buffer
from tests.conftest import REDIS_URL as REDIS
from tests.conftest import access_token, redis_available
from tests.helpers import communicator, frames_until, metadata, run
from tools_app.lifecycle import get_lifecycle
from tools_app.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

SURROGATE = "\\ud800"  # as JSON spells it: decoded, a str no UTF-8 encoder takes


async def test_a_lone_surrogate_in_a_request_id_or_tool_name_is_replaced_and_answered(
    user: Any, other_user: Any
) -> None:
    comm = communicator("/ws", token=access_token(user))
    await comm.connect()
    await comm.send_to(text_data=f'{{"op":"call_tool","request_id":"r{SURROGATE}","name":"version","arguments":{{}}}}')
    answer = (await frames_until(comm, "call_tool_res"))[-1]
    assert answer["request_id"] == "r\ufffd" and "error" not in answer
    await comm.send_to(text_data=f'{{"op":"call_tool","request_id":"r2","name":"ver{SURROGATE}sion"}}')
    unknown = (await frames_until(comm, "call_tool_res"))[-1]
    assert unknown["error"]["code"] == "unknown_tool" and "\ufffd" in unknown["error"]["message"]
    await comm.disconnect()

    other = communicator("/ws", token=access_token(other_user))
    await other.connect()
    await other.send_to(text_data=json.dumps({"op": "call_tool", "request_id": "o1", "name": "version"}))
    await frames_until(other, "call_tool_res")
    await other.disconnect()
    # The batch holding the bad names is written whole: nobody's samples are lost.
    assert await sync_to_async(buffer.flush)() == 3
    assert await LatencySample.objects.filter(user_id=other_user.pk).acount() == 1


async def test_a_lone_surrogate_over_mcp_is_replaced(user: Any) -> None:
    comm = communicator("/mcp", token=access_token(user), subprotocols=["mcp"])
    await comm.connect()
    await comm.send_to(
        text_data=f'{{"jsonrpc":"2.0","id":"a{SURROGATE}","method":"tools/call","params":{{"name":"x{SURROGATE}"}}}}'
    )
    response = json.loads(await comm.receive_from())
    assert response["id"] == "a\ufffd"
    await comm.disconnect()


def test_a_nul_in_a_prompt_is_replaced_so_its_turn_is_stored(user: Any) -> None:
    # PostgreSQL's text and jsonb hold no NUL: the turn (written after the answer) would be lost.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    body = '{"arguments": {"prompt": "before\\u0000after"}}'
    response = client.post("/api/tools/chat/call/", body, content_type="application/json")
    assert response.status_code == 200 and "before\ufffdafter" in response.json()["text"]
    thread = response.json()["outputs"][0]["metadata"]["continuation_id"]
    assert Message.objects.filter(conversation_id=thread, role="user", content="before\ufffdafter").exists()


def test_a_lone_surrogate_in_a_rest_body_is_replaced(user: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    body = f'{{"arguments": {{"prompt": "hi {SURROGATE} there"}}}}'
    response = client.post("/api/tools/chat/call/", body, content_type="application/json")
    assert response.status_code == 200 and "hi \ufffd there" in response.json()["text"]


def test_a_captured_error_carrying_a_lone_surrogate_is_stored_and_shown(admin_user: Any) -> None:
    capture_exception(ValueError("bad id r\ud800 in request"), context={"request_id": "r\ud800"})
    [recorded] = flush_errors()
    error = ErrorInvestigation.objects.get(pk=recorded.error_id)
    assert "\ufffd" in error.error_message and error.error_context["request_id"] == "r\ufffd"
    client = Client()
    client.force_login(admin_user)
    assert client.get("/api/errors/").status_code == 200
    assert client.get(f"/api/errors/{error.pk}/").status_code == 200
    assert client.get(f"/admin/errors_app/errorinvestigation/{error.pk}/change/").status_code == 200


def test_a_sample_that_cannot_be_written_does_not_lose_the_rest_of_its_batch(user: Any) -> None:
    for tool in ("version", "bad\ud800tool", "chat"):
        sample = LatencySample(tool=tool, request_id=uuid.uuid4().hex, status="ok", total_latency_ms=1.0)
        sample.created = timezone.now()
        buffer.add(sample)
    assert buffer.flush() == 2
    assert set(LatencySample.objects.values_list("tool", flat=True)) == {"version", "chat"}


# --- Bounded text and steps --------------------------------------------------


async def test_a_huge_system_prompt_is_refused_before_any_provider_sees_it(user: Any, stub: Any) -> None:
    comm = communicator("/ws", token=access_token(user))
    await comm.connect()
    arguments = {"prompt": "hi", "system_prompt": "s" * 2_000_000}
    await comm.send_json_to({"op": "call_tool", "request_id": "big", "name": "chat", "arguments": arguments})
    answer = (await frames_until(comm, "call_tool_res"))[-1]
    await comm.disconnect()
    assert answer["error"]["code"] == "invalid_arguments" and "system_prompt" in answer["error"]["message"]
    assert stub.chat_requests() == []


def step(number: int, **extra: Any) -> dict[str, Any]:
    return {
        "step": f"look at part {number}",
        "step_number": number,
        "total_steps": 10,
        "next_step_required": True,
        "findings": f"finding {number}",
        **extra,
    }


async def test_every_text_field_of_a_workflow_step_is_bounded(user: Any) -> None:
    outcome = await run(user, "debug", step(1, hypothesis="h" * (5 * 1024 * 1024)))
    assert outcome["error"]["code"] == "invalid_arguments" and "hypothesis" in outcome["error"]["message"]
    nested = await run(user, "debug", step(1, issues_found=[{"severity": "low", "description": "d" * 70_000}]))
    assert "issues_found[0].description" in nested["error"]["message"]
    assert await Message.objects.acount() == 0  # nothing of them was stored


async def test_a_thread_keeps_a_bounded_number_of_workflow_steps(user: Any, settings: Any) -> None:
    settings.EXAI_MAX_THREAD_STEPS = 3
    first = await run(user, "debug", step(1))
    thread = metadata(first)["continuation_id"]
    for number in (2, 3):
        assert "error" not in await run(user, "debug", step(number, continuation_id=thread))
    assert "error" not in await run(user, "debug", step(3, continuation_id=thread))  # a retry replaces its step
    refused = await run(user, "debug", step(4, continuation_id=thread))
    assert refused["error"]["code"] == "invalid_arguments" and "its limit" in refused["error"]["message"]
    assert await Message.objects.filter(conversation_id=thread).acount() == 3


# --- Expired threads are purged -----------------------------------------------


def threads(owner: Any, *, expired: int, live: int) -> None:
    now = timezone.now()
    for index in range(expired + live):
        when = now - timedelta(hours=1) if index < expired else now + timedelta(hours=1)
        conversation = Conversation.objects.create(owner=owner, tool="chat", expires_at=when)
        Message.objects.create(conversation=conversation, role="user", content="q", tool="chat")
        Message.objects.create(conversation=conversation, role="assistant", content="a", tool="chat")


def test_cleanup_conversations_deletes_expired_threads_with_their_messages(user: Any) -> None:
    threads(user, expired=2, live=1)
    out = StringIO()
    call_command("cleanup_conversations", "--dry-run", stdout=out)
    assert "would delete 2 expired thread(s) with 4 message(s)" in out.getvalue()
    assert Conversation.objects.count() == 3
    call_command("cleanup_conversations", stdout=out)
    assert "deleted 2 expired thread(s) with 4 message(s)" in out.getvalue()
    assert Conversation.objects.count() == 1 and Message.objects.count() == 2


async def test_server_processes_purge_expired_threads_in_the_background(user: Any, settings: Any) -> None:
    settings.EXAI_THREAD_PURGE_INTERVAL_S = 0.1
    await sync_to_async(threads)(user, expired=1, live=1)
    get_lifecycle()  # what serving the first socket or call does on a server's loop
    await wait_for_async(lambda: Conversation.objects.acount(), 1)
    assert await Message.objects.acount() == 2


async def wait_for_async(read: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while await read() != expected:
            await asyncio.sleep(0.05)


# --- One user cannot flood the shared cache ------------------------------------

EMBEDDED_CACHE = {
    "default": {"BACKEND": "exai_site.cache.FairLocMemCache", "OPTIONS": {"MAX_ENTRIES": 300, "MAX_PER_OWNER": 50}}
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


async def mcp_post(token: str, body: dict[str, Any], **headers: str) -> Any:
    return await AsyncClient().post(
        "/mcp",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **headers},
    )


async def login(address: str) -> int:
    client = AsyncClient(REMOTE_ADDR=address)
    body = {"username": "bob", "password": "wrong"}
    return (await client.post("/api/auth/token/", body, content_type="application/json")).status_code


@pytest.mark.parametrize("store", ["embedded", "redis"])
async def test_one_users_flood_of_sessions_evicts_nobody_elses_sessions_or_login_counts(
    user: Any, other_user: Any, settings: Any, store: str
) -> None:
    if store == "embedded":
        settings.CACHES = EMBEDDED_CACHE
    else:
        if not redis_available():
            pytest.skip("no Redis at 127.0.0.1:6379")
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS}}
    settings.EXAI_LOGIN_RATE = "3/minute"
    settings.EXAI_API_ANON_RATE = None  # only the login limit counts here
    bob = access_token(other_user)
    session = (await mcp_post(bob, INITIALIZE))["Mcp-Session-Id"]
    assert [await login("10.0.0.2") for _ in range(3)] == [401, 401, 401]

    flooder = access_token(user)
    for _ in range(320):
        assert (await mcp_post(flooder, INITIALIZE)).status_code == 200

    listing = await mcp_post(bob, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, **{"Mcp-Session-Id": session})
    assert listing.status_code == 200  # bob's session is still there
    assert await login("10.0.0.2") == 429  # and so is the count of password guesses from his address


# --- One user cannot take every slot of a provider ------------------------------


async def test_another_users_call_waits_for_no_slot_while_one_user_floods_kimi_over_sockets(
    user: Any, other_user: Any, settings: Any
) -> None:
    settings.EXAI_KIMI_MAX_CONCURRENCY = 4  # fewer than the 8 calls one user may run at once
    flooder = communicator("/ws", token=access_token(user))
    await flooder.connect()
    for index in range(8):
        arguments = {"prompt": f"flood {index} [[stub:delay=0.6]]", "model": "kimi"}
        await flooder.send_json_to(
            {"op": "call_tool", "request_id": f"f{index}", "name": "chat", "arguments": arguments}
        )
    await asyncio.sleep(0.2)  # the flood holds what it may

    other = communicator("/ws", token=access_token(other_user))
    await other.connect()
    answer = await call_and_wait(other, {"prompt": "my turn", "model": "kimi"})
    waits = metadata(answer)["latency_metrics"]
    assert waits["provider_sem_wait_ms"] + waits["global_sem_wait_ms"] < 100  # not the flood's 600 ms
    await other.disconnect()
    await flooder.disconnect()


async def call_and_wait(comm: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    await comm.send_json_to({"op": "call_tool", "request_id": "mine", "name": "chat", "arguments": arguments})
    return (await frames_until(comm, "call_tool_res"))[-1]
