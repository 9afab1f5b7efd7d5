"""Broken answers are never passed off as complete ones; long answers are not mistaken for dead providers."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from tests.helpers import captured_errors, metadata, run, wait_for
from tools_app.circuit import get_circuit_breaker
from tools_app.models import Message
from tools_app.providers.replies import CUT_NOTES
from tools_app.turns import flush_turns

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = ["kimi-k2.6", "moonshot-v1-128k", "glm-5.1"]


@pytest.mark.parametrize("model", MODELS)
async def test_an_html_page_instead_of_a_stream_is_a_retryable_provider_error(user: Any, model: str) -> None:
    outcome = await run(user, "chat", {"prompt": "hi [[stub:garbage=yes]]", "model": model})
    assert outcome["error"]["code"] == "provider_error"
    assert "text/html instead of an event stream" in outcome["error"]["message"]
    assert await captured_errors("text/html")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("directive", ["cut", "reset"])
async def test_a_stream_that_ends_before_any_answer_is_a_provider_error(user: Any, model: str, directive: str) -> None:
    outcome = await run(user, "chat", {"prompt": f"hi [[stub:{directive}=0]]", "model": model})
    assert outcome["error"]["code"] == "provider_error"
    assert "before any answer" in outcome["error"]["message"] or "broke" in outcome["error"]["message"]
    assert await captured_errors()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("directive", ["cut", "reset"])
async def test_a_stream_cut_mid_answer_returns_its_text_marked_incomplete_and_counts_against_the_provider(
    user: Any, model: str, directive: str
) -> None:
    outcome = await run(user, "chat", {"prompt": f"[[stub:words=40]] [[stub:{directive}=10]]", "model": model})
    meta = metadata(outcome)
    assert (meta["finish_reason"], meta["incomplete"]) == ("incomplete", True)
    assert outcome["text"].startswith("word0 word1") and "word10" not in outcome["text"]
    assert outcome["text"].endswith(CUT_NOTES["incomplete"])
    assert await captured_errors()  # the fault is an error of its own
    provider = "glm" if model.startswith("glm") else "kimi"
    circuit = (await get_circuit_breaker().snapshot([provider]))[provider]
    assert circuit["failures"] == 1
    # The thread keeps what came, marked too.
    await flush_turns()
    stored = await Message.objects.filter(role="assistant").order_by("-id").afirst()
    assert stored is not None and stored.content == outcome["text"]


async def test_an_answer_cut_incomplete_is_never_served_from_the_cache(user: Any, stub: Any) -> None:
    arguments = {"prompt": "[[stub:words=40]] [[stub:cut=10]]", "model": "glm-5.1", "temperature": 0}
    await run(user, "chat", arguments)
    again = await run(user, "chat", arguments)
    assert metadata(again)["cache_hit"] is False and len(stub.chat_requests()) == 2


@pytest.mark.parametrize("model", ["kimi-k2.6", "glm-5.1"])
async def test_an_output_budget_spent_on_reasoning_is_an_error_that_says_so(user: Any, stub: Any, model: str) -> None:
    from tools_app.providers import resolve_model
    from tools_app.providers.base import ProviderError
    from tools_app.providers.replies import ReplyCollector

    resolved = await resolve_model(model)
    with pytest.raises(ProviderError) as caught:
        await resolved.provider.chat(
            spec=resolved.spec,
            messages=[{"role": "user", "content": "deep [[stub:reasoning_words=400]]"}],
            temperature=None,
            max_tokens=100,
            reply=ReplyCollector(model),
        )
    assert "spent the whole output budget" in caught.value.message and "reasoning" in caught.value.message


async def test_a_provider_silent_mid_answer_keeps_the_text_and_fails_as_timeout_for_the_breaker(
    user: Any, settings: Any
) -> None:
    settings.EXAI_GLM_TIMEOUT_S = 0.3
    outcome = await run(user, "chat", {"prompt": "[[stub:words=20]] [[stub:silence=3]]", "model": "glm-5.1"})
    assert metadata(outcome)["finish_reason"] == "incomplete" and outcome["text"].startswith("word0")
    assert await captured_errors("GLM said nothing for")


async def test_a_steady_long_answer_is_cut_by_the_deadline_keeping_its_text_and_the_provider_stays_healthy(
    user: Any, stub: Any, settings: Any
) -> None:
    settings.EXAI_TOOL_TIMEOUT_S = 1.5
    settings.EXAI_KIMI_TIMEOUT_S = 0.5  # each gap is 0.1 s: never silent that long
    outcome = await run(
        user, "chat", {"prompt": "[[stub:words=100]] [[stub:stream_s=10]]", "model": "moonshot-v1-128k"}
    )
    meta = metadata(outcome)
    assert (meta["finish_reason"], meta["incomplete"]) == ("deadline", True)
    assert outcome["text"].startswith("word0 word1") and outcome["text"].endswith(CUT_NOTES["deadline"])
    circuit = (await get_circuit_breaker().snapshot(["kimi"]))["kimi"]
    assert circuit["state"] == "closed" and circuit["failures"] == 0
    await flush_turns()  # the turn is written just after the answer (tools_app/turns.py)
    stored = await database_sync_to_async(lambda: Message.objects.filter(role="assistant").last())()
    assert stored is not None and stored.content == outcome["text"]
    await wait_for(lambda: stub.aborted == 1)  # the provider request was stopped, not left streaming


async def test_a_steady_45_second_answer_arrives_whole_with_the_default_settings(user: Any, stub: Any) -> None:
    outcome = await run(
        user, "chat", {"prompt": "the long one [[stub:words=180]] [[stub:stream_s=45]]", "model": "kimi-k2.6"}
    )
    meta = metadata(outcome)
    assert meta["finish_reason"] == "stop" and "incomplete" not in meta
    assert outcome["text"].split() == [f"word{n}" for n in range(180)]
    assert meta["latency_metrics"]["total_latency_ms"] > 44_000
