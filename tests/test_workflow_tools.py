"""The workflow tools (thinkdeep … precommit), planner, consensus and challenge, against the provider stub."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async

from files_app.blobs import blob_from_chunks
from files_app.services import file_ingest
from tests.helpers import run
from tools_app.tools import REGISTRY
from tools_app.tools.workflow import WorkflowTool

pytestmark = pytest.mark.django_db(transaction=True)

WORKFLOW_TOOLS = sorted(name for name, tool in REGISTRY.items() if isinstance(tool, WorkflowTool))


def body(outcome: dict[str, Any]) -> dict[str, Any]:
    """The JSON a workflow reply starts with."""
    assert "error" not in outcome, outcome
    text = outcome["text"]
    return json.loads(text.split("\n\n## Expert analysis", 1)[0])


def step(number: int, total: int, more: bool, **extra: Any) -> dict[str, Any]:
    return {
        "step": f"step {number}",
        "step_number": number,
        "total_steps": total,
        "next_step_required": more,
        "findings": f"found thing {number}",
        **extra,
    }


def test_there_are_the_eleven_workflow_tools_plus_planner() -> None:
    assert WORKFLOW_TOOLS == [
        "analyze",
        "codereview",
        "debug",
        "docgen",
        "precommit",
        "refactor",
        "secaudit",
        "testgen",
        "thinkdeep",
        "tracer",
    ]
    assert "planner" in REGISTRY  # the eleventh: branching and revision, no expert


@pytest.mark.parametrize("name", WORKFLOW_TOOLS)
@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"findings": None}, "'findings' is a required property"),
        ({"step_number": 0}, "step_number"),
        ({"confidence": "sure"}, "confidence"),
        ({"next_step_required": "no"}, "next_step_required"),
        ({"issues_found": [{"severity": "urgent", "description": "x"}]}, "issues_found"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_each_workflow_tool_rejects_bad_input(
    user: Any, name: str, change: dict[str, Any], fragment: str
) -> None:
    arguments = {**step(1, 2, True), **change}
    arguments = {key: value for key, value in arguments.items() if value is not None}
    outcome = await run(user, name, arguments)
    assert outcome["error"]["code"] == "invalid_arguments" and fragment in outcome["error"]["message"]


async def test_a_review_pauses_without_a_provider_call_until_the_final_step_which_makes_exactly_one(
    user: Any, stub: Any
) -> None:
    reference = await database_sync_to_async(file_ingest)(
        owner=user, blob=blob_from_chunks([b"def risky():\n    eval(input())\n"]), name="risky.py"
    )
    first = body(
        await run(user, "codereview", step(1, 3, True, review_type="security", relevant_files=[str(reference.pk)]))
    )
    assert first["status"] == "pause_for_codereview" and first["required_actions"]
    thread = first["continuation_id"]
    second = body(
        await run(
            user,
            "codereview",
            step(2, 3, True, continuation_id=thread, issues_found=[{"severity": "high", "description": "eval"}]),
        )
    )
    assert second["status"] == "pause_for_codereview" and second["workflow"]["issues_found"] == {"high": 1}
    assert stub.chat_requests() == []  # no provider call while the assistant is still investigating

    final = await run(user, "codereview", step(3, 3, False, continuation_id=thread, confidence="high"))
    assert body(final)["status"] == "codereview_complete"
    assert "## Expert analysis" in final["text"] and final["outputs"][0]["metadata"]["provider"] == "kimi"
    [request] = stub.chat_requests()
    messages = request["payload"]["messages"]
    assert "eval(input())" in "\n".join(m["content"] for m in messages if m["role"] == "system")  # the file, in full
    expert_request = messages[-1]["content"]
    assert (
        all(f"found thing {n}" in expert_request for n in (1, 2, 3)) and '"review_type": "security"' in expert_request
    )


@pytest.mark.parametrize(
    "finish", [{"use_assistant_model": False}, {"confidence": "certain"}], ids=["no assistant model", "certain"]
)
async def test_a_workflow_can_finish_without_the_expert(user: Any, stub: Any, finish: dict[str, Any]) -> None:
    first = body(await run(user, "debug", step(1, 2, True)))
    done = body(await run(user, "debug", step(2, 2, False, continuation_id=first["continuation_id"], **finish)))
    assert done["status"] == "local_work_complete" and "found thing 2" in done["summary"]
    assert stub.chat_requests() == []


async def test_backtracking_discards_the_later_steps(user: Any, stub: Any) -> None:
    thread = body(await run(user, "thinkdeep", step(1, 3, True)))["continuation_id"]
    await run(user, "thinkdeep", step(2, 3, True, continuation_id=thread, findings="a dead end"))
    again = body(
        await run(user, "thinkdeep", step(2, 3, True, continuation_id=thread, backtrack_from_step=2, findings="fresh"))
    )
    assert again["workflow"]["steps_recorded"] == 2
    await run(user, "thinkdeep", step(3, 3, False, continuation_id=thread))
    expert_request = stub.chat_requests()[-1]["payload"]["messages"][-1]["content"]
    assert "fresh" in expert_request and "a dead end" not in expert_request


async def test_a_later_step_without_the_thread_is_refused_clearly(user: Any) -> None:
    outcome = await run(user, "analyze", step(2, 3, True))
    assert outcome["error"]["code"] == "invalid_arguments" and "continuation_id" in outcome["error"]["message"]


async def test_a_chat_thread_continues_in_codereview_and_the_expert_sees_the_chat(user: Any, stub: Any) -> None:
    chat = await run(user, "chat", {"prompt": "we use a custom ORM called Quill"})
    thread = chat["outputs"][0]["metadata"]["continuation_id"]
    await run(user, "codereview", step(1, 1, False, continuation_id=thread))
    messages = stub.chat_requests()[-1]["payload"]["messages"]
    assert any("custom ORM called Quill" in str(m["content"]) for m in messages[:-1])


async def test_workflow_steps_have_the_workflow_deadline_and_the_expert_step_the_expert_one(settings: Any) -> None:
    tool = REGISTRY["debug"]
    assert tool.deadline_s(step(1, 2, True)) == settings.EXAI_WORKFLOW_TIMEOUT_S
    assert tool.deadline_s(step(2, 2, False)) == settings.EXAI_TOOL_TIMEOUT_S
    assert tool.deadline_s(step(2, 2, False, use_assistant_model=False)) == settings.EXAI_WORKFLOW_TIMEOUT_S
    assert REGISTRY["version"].deadline_s({}) == settings.EXAI_SIMPLE_TIMEOUT_S
    assert REGISTRY["chat"].deadline_s({"prompt": "x"}) == settings.EXAI_TOOL_TIMEOUT_S


async def test_a_call_over_its_deadline_fails_as_timeout(user: Any, settings: Any) -> None:
    settings.EXAI_TOOL_TIMEOUT_S = 0.5
    outcome = await run(user, "chat", {"prompt": "slow [[stub:delay=3]]"})
    assert outcome["error"]["code"] == "timeout" and "deadline of 0.5s" in outcome["error"]["message"]


@pytest.mark.parametrize("name", sorted(REGISTRY))
async def test_every_tools_schema_refuses_an_unknown_argument(user: Any, name: str) -> None:
    outcome = await run(user, name, {"surely_not_an_argument": 1})
    assert outcome["error"]["code"] == "invalid_arguments", outcome


async def test_another_users_thread_is_forbidden_to_a_workflow_tool(user: Any, other_user: Any) -> None:
    theirs = body(await run(other_user, "debug", step(1, 2, True)))["continuation_id"]
    outcome = await run(user, "debug", step(2, 2, True, continuation_id=theirs))
    assert outcome["error"]["code"] == "forbidden"


async def test_step_text_over_the_prompt_limit_is_refused_with_advice(user: Any, settings: Any) -> None:
    settings.EXAI_MAX_PROMPT_CHARS = 100
    outcome = await run(user, "codereview", step(1, 1, True, findings="x" * 200))
    assert outcome["error"]["code"] == "invalid_arguments" and "as a file" in outcome["error"]["message"]


# --- planner -------------------------------------------------------------------


async def test_the_planner_revises_and_branches_without_a_provider_call(user: Any, stub: Any) -> None:
    def plan(number: int, text: str, more: bool = True, **extra: Any) -> dict[str, Any]:
        return {"step": text, "step_number": number, "total_steps": 4, "next_step_required": more, **extra}

    first = body(await run(user, "planner", plan(1, "Add a cache table")))
    thread = first["continuation_id"]
    assert first["status"] == "pause_for_planner"
    await run(user, "planner", plan(2, "Write the migration", continuation_id=thread))
    await run(
        user,
        "planner",
        plan(3, "Use Redis instead", continuation_id=thread, is_step_revision=True, revises_step_number=1),
    )
    await run(
        user, "planner", plan(4, "Try memcached", continuation_id=thread, branch_id="memcached", branch_from_step=2)
    )
    done = body(await run(user, "planner", plan(5, "Ship it", more=False, continuation_id=thread)))
    assert done["status"] == "planner_complete" and done["branches"] == ["memcached"]
    assert "1. Use Redis instead (revised)" in done["plan"] and "### Branch memcached (from step 2)" in done["plan"]
    assert stub.chat_requests() == []
    bad = await run(user, "planner", plan(6, "x", continuation_id=thread, is_step_revision=True))
    assert bad["error"]["code"] == "invalid_arguments"


# --- consensus and challenge ---------------------------------------------------------


async def test_consensus_returns_every_view_and_a_synthesis_even_when_one_model_fails(user: Any, stub: Any) -> None:
    outcome = await run(
        user,
        "consensus",
        {
            "prompt": "Should we adopt GraphQL? [[stub:fail_model=glm-4.5]]",
            "models": [
                {"model": "kimi", "stance": "for"},
                {"model": "glm-4.5", "stance": "against"},
                {"model": "glm-4.6"},
            ],
            "model": "kimi",
        },
    )
    assert "error" not in outcome, outcome
    views = outcome["outputs"][0]["metadata"]["views"]
    assert [v["model"] for v in views] == ["kimi-k2.6", "glm-4.5", "glm-4.6"]
    assert "error" not in views[0] and views[1]["error"]["code"] == "provider_error" and "error" not in views[2]
    assert "## Synthesis" in outcome["text"] and "(failed: provider_error" in outcome["text"]
    # Three views in parallel, then one synthesis; the stances reached the models.
    requests = stub.chat_requests()
    assert len(requests) == 4
    systems = [r["payload"]["messages"][0]["content"] for r in requests[:3]]
    assert any("FOR the proposal" in s for s in systems) and any("AGAINST" in s for s in systems)


async def test_consensus_fails_clearly_when_every_model_fails(user: Any) -> None:
    outcome = await run(user, "consensus", {"prompt": "x [[stub:status=503]]", "models": [{"model": "kimi"}]})
    assert outcome["error"]["code"] == "provider_error" and "every model failed" in outcome["error"]["message"]


async def test_challenge_wraps_the_statement_without_a_provider_call(user: Any, stub: Any) -> None:
    outcome = await run(user, "challenge", {"prompt": "You are right that the lock is unnecessary."})
    payload = json.loads(outcome["text"])
    assert payload["status"] == "challenge_accepted" and "do not simply agree" in payload["challenge_prompt"]
    assert stub.chat_requests() == []
