"""Thinking models as Moonshot and Z.ai serve them: reasoning apart, pinned sampling, real controls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import metadata, run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("model", ["kimi-k2.6", "glm-5.1"])
async def test_reasoning_streams_apart_from_the_answer_and_is_counted(user: Any, model: str) -> None:
    answer: list[str] = []
    reasoning: list[str] = []

    async def on_stream(delta: str) -> None:
        answer.append(delta)

    async def on_reasoning(delta: str) -> None:
        reasoning.append(delta)

    outcome = await run(
        user, "chat", {"prompt": "why WAL?", "model": model}, on_stream=on_stream, on_reasoning=on_reasoning
    )
    assert "".join(reasoning).startswith("Let me think about 'why WAL?'")
    assert outcome["text"] == "".join(answer) == f"stub reply from {model}: why WAL? (saw 2 messages)"
    assert metadata(outcome)["reasoning_tokens"] > 0


async def test_a_temperature_a_thinking_model_refuses_is_invalid_before_any_request(user: Any, stub: Any) -> None:
    outcome = await run(user, "chat", {"prompt": "hi", "model": "kimi-k2.6", "temperature": 0.3})
    assert outcome["error"]["code"] == "invalid_arguments"
    assert "kimi-k2.6 takes no temperature but 1" in outcome["error"]["message"]
    assert stub.chat_requests() == []


async def test_temperature_one_is_accepted_and_no_sampling_setting_is_sent_to_a_pinned_model(
    user: Any, stub: Any
) -> None:
    metadata(await run(user, "chat", {"prompt": "hi", "model": "kimi-k2.6", "temperature": 1}))
    assert "temperature" not in stub.chat_requests()[-1]["payload"]


async def test_consensus_refuses_a_temperature_one_of_its_models_pins_before_asking_any(user: Any, stub: Any) -> None:
    arguments = {"prompt": "tabs?", "models": [{"model": "glm-5.1"}, {"model": "kimi-k2.6"}], "temperature": 0.2}
    outcome = await run(user, "consensus", arguments)
    assert outcome["error"]["code"] == "invalid_arguments" and "kimi-k2.6" in outcome["error"]["message"]
    assert stub.chat_requests() == []


@pytest.mark.parametrize(
    ("model", "mode", "sent"),
    [
        ("kimi-k2.6", "minimal", {"thinking": {"type": "disabled"}}),
        ("kimi-k2.6", "low", {"reasoning_effort": "low"}),
        ("kimi-k2.6", "high", {"reasoning_effort": "high"}),
        ("kimi-k2.6", "max", {}),
        ("glm-5.1", "minimal", {"thinking": {"type": "disabled"}}),
        ("glm-5.1", "high", {"thinking": {"type": "enabled"}}),
        ("moonshot-v1-128k", "high", {}),  # no thinking to steer
    ],
)
async def test_thinking_mode_maps_to_the_providers_own_control_never_both(
    user: Any, stub: Any, model: str, mode: str, sent: dict[str, Any]
) -> None:
    metadata(await run(user, "chat", {"prompt": "hi", "model": model, "thinking_mode": mode}))
    payload = stub.chat_requests()[-1]["payload"]
    assert {key: payload[key] for key in ("thinking", "reasoning_effort") if key in payload} == sent


async def test_a_long_reasoning_still_leaves_room_for_the_answer(user: Any, stub: Any) -> None:
    # Without a budget Moonshot's small default is spent on reasoning: the answer comes back empty.
    outcome = await run(user, "chat", {"prompt": "prove it [[stub:reasoning_words=3000]]", "model": "kimi-k2.6"})
    assert metadata(outcome)["finish_reason"] == "stop" and outcome["text"].startswith("stub reply from kimi-k2.6")
    assert stub.chat_requests()[-1]["payload"]["max_tokens"] == 32_768


def workflow_final(model: str) -> dict[str, Any]:
    return {
        "step": "Looked at the cache layer",
        "step_number": 1,
        "total_steps": 1,
        "next_step_required": False,
        "findings": "Entries never expire",
        "confidence": "high",
        "model": model,
    }


@pytest.mark.parametrize("model", ["kimi-k2.6", "glm-5.1"])
@pytest.mark.parametrize("tool", ["thinkdeep", "codereview"])
async def test_expert_workflows_run_on_thinking_models_of_both_providers(
    user: Any, stub: Any, tool: str, model: str
) -> None:
    outcome = await run(user, tool, workflow_final(model))
    assert metadata(outcome)["model"] == model and metadata(outcome)["reasoning_tokens"] > 0
    assert "## Expert analysis\n\nstub reply from" in outcome["text"]
    assert "Let me think" not in outcome["text"]


async def test_consensus_runs_on_thinking_models_of_both_providers(user: Any, stub: Any) -> None:
    arguments = {"prompt": "tabs?", "models": [{"model": "kimi-k2.6", "stance": "for"}, {"model": "glm-5.1"}]}
    outcome = await run(user, "consensus", arguments)
    views = metadata(outcome)["views"]
    assert [view["model"] for view in views] == ["kimi-k2.6", "glm-5.1"] and not any("error" in v for v in views)
    assert len(stub.chat_requests()) == 3  # two views and the synthesis


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


async def test_function_calling_while_thinking_hands_back_the_reasoning_for_the_next_turn(user: Any, stub: Any) -> None:
    first = await run(
        user,
        "kimi_chat_with_tools",
        {"messages": [{"role": "user", "content": "weather? [[stub:call_tool=get_weather]]"}], "tools": TOOLS},
    )
    turn = json.loads(first["text"])
    assert turn["finish_reason"] == "tool_calls" and turn["reasoning_content"].startswith("Let me think")
    assistant = {"role": "assistant", "content": "", "tool_calls": turn["tool_calls"]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    question = {"role": "user", "content": "weather? [[stub:call_tool=get_weather]]"}

    # Moonshot refuses a thinking model's tool call sent back without its reasoning ...
    refused = await run(user, "kimi_chat_with_tools", {"messages": [question, assistant, result], "tools": TOOLS})
    assert refused["error"]["code"] == "provider_error"
    assert "reasoning_content is missing in assistant tool call message at index 1" in refused["error"]["message"]
    # ... and takes it with the reasoning the first turn handed back.
    assistant["reasoning_content"] = turn["reasoning_content"]
    second = await run(user, "kimi_chat_with_tools", {"messages": [question, assistant, result], "tools": TOOLS})
    assert "error" not in second, second


async def test_tool_choice_required_on_a_thinking_model_is_refused_before_any_request(user: Any, stub: Any) -> None:
    arguments = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": "required"}
    outcome = await run(user, "kimi_chat_with_tools", arguments)
    assert outcome["error"]["code"] == "invalid_arguments" and "'auto'" in outcome["error"]["message"]
    assert stub.chat_requests() == []
