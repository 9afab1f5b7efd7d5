"""Conversation memory: threads continue, belong to their user, and are bounded in turns and age."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import access_token
from tests.helpers import call, connected
from tools_app.models import Conversation
from tools_app.turns import flush_turns

pytestmark = pytest.mark.django_db(transaction=True)


async def chat(token: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One chat over /ws, its turn stored before the test reads the database
    (turns are written just after the answer: tools_app/turns.py)."""
    comm = await connected(token)
    try:
        return (await call(comm, "chat", arguments))[-1]
    finally:
        await comm.disconnect()
        await flush_turns()


async def test_a_continuation_sends_the_earlier_turns_to_the_provider(token: str, stub: Any) -> None:
    first = await chat(token, {"prompt": "my name is Ada"})
    thread = first["outputs"][0]["metadata"]["continuation_id"]
    second = await chat(token, {"prompt": "what is my name?", "continuation_id": thread, "model": "glm"})

    assert second["outputs"][0]["metadata"]["continuation_id"] == thread
    sent = stub.chat_requests()[-1]["payload"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "my name is Ada"
    assert sent[2]["content"] == first["text"]
    assert second["outputs"][0]["metadata"]["remaining_turns"] == 18


async def test_the_turn_is_stored_with_its_provider_model_and_latency(token: str) -> None:
    result = await chat(token, {"prompt": "store me", "model": "glm-4.5"})
    conversation = await Conversation.objects.aget(pk=result["outputs"][0]["metadata"]["continuation_id"])
    messages = [m async for m in conversation.messages.all()]
    assert [(m.role, m.provider, m.model) for m in messages] == [
        ("user", "glm", "glm-4.5"),
        ("assistant", "glm", "glm-4.5"),
    ]
    assert messages[1].metadata["processing_ms"] > 0 and messages[1].tokens > 0


async def test_another_users_thread_is_forbidden(token: str, other_user: Any, stub: Any) -> None:
    thread = (await chat(token, {"prompt": "secret"}))["outputs"][0]["metadata"]["continuation_id"]
    result = await chat(access_token(other_user), {"prompt": "peek", "continuation_id": thread})
    assert result["error"]["code"] == "forbidden"
    assert len(stub.chat_requests()) == 1


@pytest.mark.parametrize("thread", ["not-a-uuid", "6f1c1b9e-8a59-4a5e-9a43-5d1f0f3f0a11"])
async def test_an_unknown_thread_is_a_clear_invalid_arguments(token: str, thread: str) -> None:
    result = await chat(token, {"prompt": "hi", "continuation_id": thread})
    assert result["error"]["code"] == "invalid_arguments"
    assert "start a new thread" in result["error"]["message"] or "not a valid id" in result["error"]["message"]


async def test_an_expired_thread_says_so(token: str) -> None:
    thread = (await chat(token, {"prompt": "hi"}))["outputs"][0]["metadata"]["continuation_id"]
    await Conversation.objects.filter(pk=thread).aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    result = await chat(token, {"prompt": "again", "continuation_id": thread})
    assert result["error"]["code"] == "invalid_arguments" and "expired" in result["error"]["message"]


async def test_a_thread_stops_at_its_turn_limit(token: str, settings: Any) -> None:
    settings.EXAI_MAX_CONVERSATION_TURNS = 2
    thread = (await chat(token, {"prompt": "one"}))["outputs"][0]["metadata"]["continuation_id"]
    second = await chat(token, {"prompt": "two", "continuation_id": thread})
    assert second["outputs"][0]["metadata"]["remaining_turns"] == 0
    third = await chat(token, {"prompt": "three", "continuation_id": thread})
    assert third["error"]["code"] == "invalid_arguments" and "limit of 2 turns" in third["error"]["message"]


async def test_each_turn_pushes_the_expiry_forward(token: str) -> None:
    thread = (await chat(token, {"prompt": "one"}))["outputs"][0]["metadata"]["continuation_id"]
    soon = timezone.now() + timedelta(minutes=1)
    await Conversation.objects.filter(pk=thread).aupdate(expires_at=soon)
    await chat(token, {"prompt": "two", "continuation_id": thread})
    assert (await Conversation.objects.aget(pk=thread)).expires_at > soon + timedelta(hours=2)


async def test_a_prompt_over_the_limit_is_refused_with_advice(token: str, settings: Any, stub: Any) -> None:
    settings.EXAI_MAX_PROMPT_CHARS = 100
    result = await chat(token, {"prompt": "x" * 101})
    assert result["error"]["code"] == "invalid_arguments" and "send the text as a file" in result["error"]["message"]
    assert stub.chat_requests() == []
