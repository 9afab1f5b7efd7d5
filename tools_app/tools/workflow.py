"""The step engine every workflow tool shares (thinkdeep, debug, analyze, codereview, …).

The calling assistant does the investigation itself, one step per call, and reports
what it found; the server keeps the steps in the conversation thread. While
`next_step_required` is true a step costs no provider call: the reply is
`pause_for_<tool>` with the actions the next step should take. The final step
(`next_step_required: false`) asks the chosen model once for an expert analysis of
every step, with the relevant files embedded in full — `<tool>_complete` — unless
the assistant said `use_assistant_model: false` or is `certain`, which ends as
`local_work_complete` without a provider call.

A tool is a small module: its name, description, system prompt, extra fields, and
the actions it asks for at each stage.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar, cast

from channels.db import database_sync_to_async
from django.conf import settings

from tools_app.calls import reply_metadata
from tools_app.context_window import prompt_limit_check
from tools_app.conversations import (
    conversation_open,
    conversation_record_step,
)
from tools_app.errors import ToolError
from tools_app.providers.types import ThinkingMode
from tools_app.throttle import get_throttle
from tools_app.tools.base import (
    CONTINUATION_PROPERTY,
    MODEL_PROPERTY,
    TEMPERATURE_PROPERTY,
    THINKING_MODE_PROPERTY,
    CallContext,
    Tool,
    ToolResult,
    object_schema,
    resolve_tool_model,
)
from tools_app.tools.files import FILES_OR_PATHS_SCHEMA, file_label, resolve_files
from tools_app.tools.messages import turn_messages
from tools_app.tools.vision import IMAGES_SCHEMA

CONFIDENCE = ["exploring", "low", "medium", "high", "very_high", "almost_certain", "certain"]
SEVERITIES = ["critical", "high", "medium", "low"]
# How much of a model's output limit each thinking mode allows. A thinking model always gets
# its whole budget (its reasoning spends it first); the provider's own control steers it.
THINKING_SHARE = {"minimal": 0.05, "low": 0.15, "medium": 0.33, "high": 0.67, "max": 1.0}

STEP_PROPERTIES: dict[str, Any] = {
    "step": {"type": "string", "minLength": 1, "description": "What this step investigated or will."},
    "step_number": {"type": "integer", "minimum": 1, "maximum": 100},
    "total_steps": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Current estimate."},
    "next_step_required": {"type": "boolean", "description": "false on the final step (runs the expert)."},
    "findings": {"type": "string", "description": "What this step found."},
    "hypothesis": {"type": "string"},
    "confidence": {"type": "string", "enum": CONFIDENCE},
    "relevant_files": FILES_OR_PATHS_SCHEMA,
    "files_checked": {"type": "array", "items": {"type": "string"}},
    "relevant_context": {"type": "array", "items": {"type": "string"}, "description": "Functions, classes…"},
    "issues_found": {
        "type": "array",
        "items": object_schema(
            {"severity": {"type": "string", "enum": SEVERITIES}, "description": {"type": "string"}},
            ["severity", "description"],
        ),
    },
    "backtrack_from_step": {"type": "integer", "minimum": 1, "description": "Discard this step and later ones."},
    "use_assistant_model": {"type": "boolean", "description": "false: finish without the expert model."},
    "continuation_id": CONTINUATION_PROPERTY,
    "model": MODEL_PROPERTY,
    "temperature": TEMPERATURE_PROPERTY,
    "thinking_mode": THINKING_MODE_PROPERTY,
    "use_websearch": {"type": "boolean"},
    "images": IMAGES_SCHEMA,
}
STEP_REQUIRED = ["step", "step_number", "total_steps", "next_step_required", "findings"]
# Fields of a step kept in the thread (the rest steer this call only).
_KEPT = ("step", "findings", "hypothesis", "confidence", "relevant_files", "files_checked", "relevant_context")


class WorkflowTool(Tool):
    """A tool driven step by step by the assistant and finished by an expert analysis."""

    kind = "workflow"
    system_prompt: ClassVar[str]
    # Tool-specific fields (review_type, trace_mode, …): shown to the expert, kept with the step.
    extra_properties: ClassVar[dict[str, Any]] = {}
    # What the assistant should do next: at the first step, in the middle, before the final one.
    first_actions: ClassVar[list[str]]
    middle_actions: ClassVar[list[str]]
    final_actions: ClassVar[list[str]] = [
        "Make sure every relevant file is listed in relevant_files: they are embedded in full at the final step.",
        "Write your conclusions into findings and call again with next_step_required false.",
    ]
    expert_request: ClassVar[str] = "Give your expert analysis of the investigation above."

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.input_schema = object_schema({**STEP_PROPERTIES, **cls.extra_properties}, STEP_REQUIRED)

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        prompt_limit_check(arguments, "step", "findings")
        step = normalised_step(arguments)
        if extras := {name: arguments[name] for name in self.extra_properties if name in arguments}:
            step["extras"] = extras  # kept with the step: step 1's review_type still holds at the end
        continuation_id = arguments.get("continuation_id")
        if step["step_number"] > 1 and not continuation_id:
            raise ToolError(
                "invalid_arguments",
                f"step {step['step_number']} needs the continuation_id that step 1's reply gave.",
            )
        if not continuation_id:
            return await self._step(ctx, arguments, step, None)
        # Steps of one thread run one at a time, in order.
        async with get_throttle().conversation(continuation_id) as waited_ms:
            ctx.conversation_wait_ms += waited_ms
            return await self._step(ctx, arguments, step, continuation_id)

    async def _step(
        self, ctx: CallContext, arguments: dict[str, Any], step: dict[str, Any], continuation_id: str | None
    ) -> ToolResult:
        # Each step's files are checked as it comes (unknown id, path not allowed or missing),
        # so a bad one is refused at once, not first at the final step and again on every retry.
        await resolve_files(ctx, step.get("relevant_files") or [])
        conversation, _ = await database_sync_to_async(conversation_open)(
            user=ctx.user, continuation_id=continuation_id, history=False
        )
        conversation, steps = await database_sync_to_async(conversation_record_step)(
            user=ctx.user, conversation=conversation, tool=self.name, step=step, content=render_step(step)
        )
        summary = workflow_summary(steps)
        base = {
            "step_number": step["step_number"],
            "total_steps": step["total_steps"],
            "next_step_required": step["next_step_required"],
            "continuation_id": str(conversation.id),
            "workflow": summary,
        }
        metadata = {"continuation_id": str(conversation.id), "remaining_turns": conversation.remaining_turns}
        if step["next_step_required"]:
            status = f"pause_for_{self.name}"
            payload = {
                "status": status,
                **base,
                "required_actions": self.required_actions(step),
                "next_step": (
                    f"Do the required actions yourself, then call {self.name} with step_number "
                    f"{step['step_number'] + 1} and this continuation_id. Do not call the expert yet."
                ),
            }
            return ToolResult(json.dumps(payload, indent=1), {**metadata, "status": status})
        if arguments.get("use_assistant_model") is False or step.get("confidence") == "certain":
            status = "local_work_complete"
            payload = {"status": status, **base, "summary": render_steps(steps)}
            return ToolResult(json.dumps(payload, indent=1), {**metadata, "status": status})
        return await self._expert(ctx, arguments, steps, conversation, base)

    def deadline_s(self, arguments: dict[str, Any]) -> float:
        """A step is quick; the final one that consults the expert has the expert's deadline."""
        expert = not arguments.get("next_step_required", True) and arguments.get("use_assistant_model") is not False
        if expert and arguments.get("confidence") != "certain":
            return settings.EXAI_TOOL_TIMEOUT_S
        return settings.EXAI_WORKFLOW_TIMEOUT_S

    def required_actions(self, step: dict[str, Any]) -> list[str]:
        if step["step_number"] == 1:
            return list(self.first_actions)
        if step["step_number"] + 1 >= step["total_steps"]:
            return list(self.final_actions)
        return list(self.middle_actions)

    async def _expert(
        self,
        ctx: CallContext,
        arguments: dict[str, Any],
        steps: list[dict[str, Any]],
        conversation: Any,
        base: dict[str, Any],
    ) -> ToolResult:
        files = await resolve_files(ctx, relevant_files(steps))
        resolved = await resolve_tool_model(
            arguments.get("model"), vision=bool(arguments.get("images")), files=bool(files)
        )
        _, history = await database_sync_to_async(conversation_open)(
            user=ctx.user, continuation_id=str(conversation.id), exclude_run=steps[0]["run"] if steps else None
        )
        request = self.expert_prompt(arguments, steps)
        messages, _ = await turn_messages(
            ctx,
            resolved,
            system=self.system_prompt,
            request=request,
            files=files,
            history=history,
            images=arguments.get("images"),
        )
        mode = arguments.get("thinking_mode") or "high"
        spec = resolved.spec
        max_tokens = spec.output_budget() if spec.thinking else spec.output_budget(THINKING_SHARE[mode])
        await ctx.progress(f"asking {resolved.spec.name} for the expert analysis")
        reply = await ctx.call_provider(
            resolved,
            messages,
            temperature=arguments.get("temperature"),
            max_tokens=max_tokens,
            thinking_mode=cast(ThinkingMode, mode),
            web_search=bool(arguments.get("use_websearch")),
        )
        conversation = await ctx.record_turn(
            conversation=conversation,
            tool=self.name,
            prompt=request,
            resolved=resolved,
            reply=reply,
            workflow_complete=True,
        )
        status = f"{self.name}_complete"
        header = {"status": status, **base, "next_steps": "Check the expert analysis against the code before acting."}
        text = json.dumps(header, indent=1) + "\n\n## Expert analysis\n\n" + reply.text
        return ToolResult(
            text,
            {
                "status": status,
                "provider": resolved.provider.name,
                "model": reply.model,
                "continuation_id": str(conversation.id),
                "remaining_turns": conversation.remaining_turns,
                **reply_metadata(reply),
                "files": [file_label(source) for source in files],
            },
        )

    def expert_prompt(self, arguments: dict[str, Any], steps: list[dict[str, Any]]) -> str:
        extras = {name: value for step in steps for name, value in (step.get("extras") or {}).items()}
        parts = [
            f"An AI coding assistant ran a {self.name} investigation in {len(steps)} step(s).",
            render_steps(steps),
        ]
        if extras:
            parts.append("Parameters: " + json.dumps(extras))
        parts.append(self.expert_request)
        return "\n\n".join(parts)


def normalised_step(arguments: dict[str, Any]) -> dict[str, Any]:
    step = {name: arguments[name] for name in (*_KEPT, "issues_found") if name in arguments}
    step["step_number"] = arguments["step_number"]
    # An assistant that finds more work than it planned just goes on: the estimate follows.
    step["total_steps"] = max(arguments["total_steps"], arguments["step_number"])
    step["next_step_required"] = arguments["next_step_required"]
    if "backtrack_from_step" in arguments:
        if arguments["backtrack_from_step"] > arguments["step_number"]:
            raise ToolError("invalid_arguments", "backtrack_from_step must not be after this step's step_number.")
        step["backtrack_from_step"] = arguments["backtrack_from_step"]
    return step


def render_step(step: dict[str, Any]) -> str:
    lines = [f"Step {step['step_number']}/{step['total_steps']}: {step['step']}", f"Findings: {step['findings']}"]
    if step.get("hypothesis"):
        lines.append(f"Hypothesis: {step['hypothesis']}")
    if step.get("confidence"):
        lines.append(f"Confidence: {step['confidence']}")
    for issue in step.get("issues_found") or []:
        lines.append(f"Issue ({issue['severity']}): {issue['description']}")
    if step.get("relevant_context"):
        lines.append("Context: " + ", ".join(step["relevant_context"]))
    if step.get("files_checked"):
        lines.append("Files checked: " + ", ".join(step["files_checked"]))
    return "\n".join(lines)


def render_steps(steps: list[dict[str, Any]]) -> str:
    return "\n\n".join(render_step(step) for step in steps)


def relevant_files(steps: list[dict[str, Any]]) -> list[str]:
    """Every file any step named relevant, once, in the order first named."""
    return list(dict.fromkeys(name for step in steps for name in step.get("relevant_files") or []))


def workflow_summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    issues = Counter(issue["severity"] for step in steps for issue in step.get("issues_found") or [])
    return {
        "steps_recorded": len(steps),
        "files_checked": len({f for step in steps for f in step.get("files_checked") or []}),
        "relevant_files": len(relevant_files(steps)),
        "issues_found": dict(issues),
        "confidence": steps[-1].get("confidence", "exploring") if steps else "exploring",
    }
