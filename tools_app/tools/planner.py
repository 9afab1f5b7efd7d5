"""`planner`: build a plan step by step, with revisions and branches; no provider call."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async

from tools_app.context_window import prompt_limit_check
from tools_app.conversations import conversation_open, conversation_record_step
from tools_app.errors import ToolError
from tools_app.throttle import get_throttle
from tools_app.tools.base import CONTINUATION_PROPERTY, CallContext, Tool, ToolResult, object_schema


class PlannerTool(Tool):
    name = "planner"
    kind = "workflow"
    profile = "lean"
    description = (
        "Plan a task step by step: one step per call, revise earlier steps or branch into alternatives; "
        "the final call returns the whole plan. No model is consulted."
    )
    input_schema = object_schema(
        {
            "step": {"type": "string", "minLength": 1, "description": "This step of the plan."},
            "step_number": {"type": "integer", "minimum": 1, "maximum": 100},
            "total_steps": {"type": "integer", "minimum": 1, "maximum": 100},
            "next_step_required": {"type": "boolean"},
            "is_step_revision": {"type": "boolean"},
            "revises_step_number": {"type": "integer", "minimum": 1},
            "is_branch_point": {"type": "boolean"},
            "branch_from_step": {"type": "integer", "minimum": 1},
            "branch_id": {"type": "string", "maxLength": 64},
            "more_steps_needed": {"type": "boolean"},
            "continuation_id": CONTINUATION_PROPERTY,
        },
        ["step", "step_number", "total_steps", "next_step_required"],
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        prompt_limit_check(arguments, "step")
        step = {key: value for key, value in arguments.items() if key != "continuation_id"}
        step["total_steps"] = max(step["total_steps"], step["step_number"])
        if step.get("is_step_revision") and not step.get("revises_step_number"):
            raise ToolError("invalid_arguments", "a revision (is_step_revision) must name revises_step_number.")
        if step.get("branch_id") and not step.get("branch_from_step"):
            raise ToolError("invalid_arguments", "a branch step (branch_id) must name branch_from_step.")
        continuation_id = arguments.get("continuation_id")
        if step["step_number"] > 1 and not continuation_id:
            raise ToolError("invalid_arguments", "steps after the first need the continuation_id step 1 returned.")
        if not continuation_id:
            return await self._step(ctx, step, None)
        async with get_throttle().conversation(continuation_id) as waited_ms:
            ctx.conversation_wait_ms += waited_ms
            return await self._step(ctx, step, continuation_id)

    async def _step(self, ctx: CallContext, step: dict[str, Any], continuation_id: str | None) -> ToolResult:
        conversation, _ = await database_sync_to_async(conversation_open)(
            user=ctx.user, continuation_id=continuation_id, history=False
        )
        conversation, steps = await database_sync_to_async(conversation_record_step)(
            user=ctx.user, conversation=conversation, tool=self.name, step=step, content=f"Plan step: {step['step']}"
        )
        done = not step["next_step_required"]
        status = "planner_complete" if done else "pause_for_planner"
        payload: dict[str, Any] = {
            "status": status,
            "step_number": step["step_number"],
            "total_steps": step["total_steps"],
            "next_step_required": step["next_step_required"],
            "continuation_id": str(conversation.id),
            "branches": sorted({s["branch_id"] for s in steps if s.get("branch_id")}),
        }
        if done:
            payload["plan"] = render_plan(steps)
        else:
            payload["next_step"] = (
                f"Think about step {step['step_number'] + 1}, then call planner with it and this continuation_id; "
                "revise (is_step_revision) or branch (branch_id, branch_from_step) when a step changes the picture."
            )
        metadata = {"status": status, "continuation_id": str(conversation.id)}
        return ToolResult(json.dumps(payload, indent=1), metadata)


def render_plan(steps: list[dict[str, Any]]) -> str:
    """The plan in Markdown: main steps in order (each revision in place of what it revised), then branches."""
    revised = {s["revises_step_number"]: s for s in steps if s.get("is_step_revision")}
    main = [s for s in steps if not s.get("branch_id") and not s.get("is_step_revision")]
    lines = ["## Plan"]
    for s in main:
        current = revised.get(s["step_number"], s)
        note = " (revised)" if current is not s else ""
        lines.append(f"{s['step_number']}. {current['step']}{note}")
    branches: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        if s.get("branch_id"):
            branches.setdefault(s["branch_id"], []).append(s)
    for branch_id, branch in branches.items():
        lines.append(f"\n### Branch {branch_id} (from step {branch[0]['branch_from_step']})")
        lines.extend(f"- {s['step']}" for s in branch)
    return "\n".join(lines)
