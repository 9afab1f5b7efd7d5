"""A thread's turn is stored just after its answer goes out, and memory stays exact.

The answer does not wait for the turn's write (tools_app/turns.py). These tests hold the
conversation tables locked from another database connection, so the write has to wait,
and check that the answer still arrives, that the thread's next turn — in this process,
or on another server process through Redis — waits for the write and sees the turn, and
that SIGTERM stores what is still queued before the process stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from tests.conftest import REDIS_URL, ServerProcess, access_token, database_url, provider_env
from tests.helpers import metadata, run
from tools_app.client import ExaiClient
from tools_app.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def turn_writes_held() -> Iterator[None]:
    """Hold off every write to the conversation tables (reads go on) until the block ends."""
    url = database_url()
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")  # writers wait (and retry), readers read
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute("LOCK TABLE tools_app_conversation, tools_app_message IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            connection.rollback()


def stored_turns(thread: str) -> list[tuple[str, str]]:
    return list(Message.objects.filter(conversation_id=thread).order_by("id").values_list("role", "content"))


async def test_the_answer_goes_out_before_its_turn_is_stored_and_the_next_turn_waits_for_it(
    user: Any, stub: Any
) -> None:
    with turn_writes_held():
        async with asyncio.timeout(10):
            first = await run(user, "chat", {"prompt": "first question"})
        thread = metadata(first)["continuation_id"]
        assert await database_sync_to_async(stored_turns)(thread) == []  # answered, not yet stored
        second = asyncio.ensure_future(run(user, "chat", {"prompt": "second", "continuation_id": thread}))
        await asyncio.sleep(0.3)
        assert not second.done()  # it waits for the first turn
        requests_before = len(stub.chat_requests())
    outcome = await asyncio.wait_for(second, 30)
    assert metadata(outcome)["continuation_id"] == thread
    assert len(stub.chat_requests()) == requests_before + 1
    sent = stub.chat_requests()[-1]["payload"]["messages"]
    assert [m["content"] for m in sent[-3:]] == ["first question", first["text"], "second"]


@pytest.mark.e2e
async def test_another_server_process_waits_for_the_turn_its_neighbour_is_still_storing(
    user: Any, stub: Any, redis_settings: Any
) -> None:
    prefix = f"exai-turns-{uuid.uuid4().hex[:8]}"
    env = {
        **provider_env(stub),
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "EXAI_REDIS_PREFIX": prefix,
        "EXAI_LOG_LEVEL": "ERROR",
    }
    token = await database_sync_to_async(access_token)(user)
    first_server, second_server = ServerProcess(env).start(), ServerProcess(env).start()
    try:
        async with ExaiClient(f"{second_server.ws_url}/ws", token) as other:
            with turn_writes_held():
                async with ExaiClient(f"{first_server.ws_url}/ws", token) as client:
                    first = await asyncio.wait_for(client.call_tool("chat", {"prompt": "asked on one"}), 10)
                thread = metadata(first)["continuation_id"]
                second = asyncio.ensure_future(
                    other.call_tool("chat", {"prompt": "asked on the other", "continuation_id": thread})
                )
                await asyncio.sleep(0.5)
                assert not second.done()  # the other process waits for the turn being stored
                requests_before = len(stub.chat_requests())
            outcome = await asyncio.wait_for(second, 30)
        assert metadata(outcome)["continuation_id"] == thread
        assert len(stub.chat_requests()) == requests_before + 1
        sent = stub.chat_requests()[-1]["payload"]["messages"]
        assert [m["content"] for m in sent[-3:]] == ["asked on one", first["text"], "asked on the other"]
    finally:
        first_server.stop()
        second_server.stop()


@pytest.mark.e2e
async def test_sigterm_stores_the_turns_still_queued_before_the_process_stops(user: Any, stub: Any) -> None:
    env = {**provider_env(stub), "DATABASE_URL": database_url(), "EXAI_LOG_LEVEL": "ERROR"}
    token = await database_sync_to_async(access_token)(user)
    server = ServerProcess(env).start()
    try:
        with turn_writes_held():
            async with ExaiClient(f"{server.ws_url}/ws", token) as client:
                answer = await asyncio.wait_for(client.call_tool("chat", {"prompt": "keep me"}), 10)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert server.process.poll() is None  # it waits to store the turn
        await asyncio.to_thread(server.process.wait, 30)
    finally:
        server.stop()
    thread = metadata(answer)["continuation_id"]
    assert await database_sync_to_async(stored_turns)(thread) == [("user", "keep me"), ("assistant", answer["text"])]
    assert await Conversation.objects.filter(pk=thread, turn_count=1).aexists()


async def test_a_turn_that_cannot_be_stored_costs_the_rest_of_its_batch_nothing(user: Any) -> None:
    from tools_app.turns import flush_turns, keep_turn

    gone = await Conversation.objects.acreate(owner=user, tool="chat", expires_at=Conversation.fresh_expiry())
    await Conversation.objects.filter(pk=gone.pk).adelete()  # by its user, while its turn was answered
    fields = {"user": user, "tool": "chat", "provider": "kimi", "model": "kimi-k2.6", "tokens_in": 1, "tokens_out": 1}
    # Queued together, so the writer takes them in one batch.
    lost = await keep_turn(conversation=gone, prompt="to a deleted thread", reply="lost", metadata={}, **fields)
    kept = await keep_turn(conversation=None, prompt="to a new thread", reply="kept", metadata={}, **fields)
    await flush_turns()
    assert await database_sync_to_async(stored_turns)(str(kept.id)) == [
        ("user", "to a new thread"),
        ("assistant", "kept"),
    ]
    assert not await Conversation.objects.filter(pk=lost.id).aexists()
    assert not await Message.objects.filter(content="lost").aexists()
