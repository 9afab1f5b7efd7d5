"""`consensus`: several models, each with a stance, asked in parallel; each view plus a synthesis."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async

from tools_app.calls import check_sampling
from tools_app.context_window import prompt_limit_check
from tools_app.conversations import conversation_open
from tools_app.errors import ToolError
from tools_app.providers import ProviderError, ResolvedModel
from tools_app.providers.types import ChatMessage
from tools_app.tools.base import (
    CONTINUATION_PROPERTY,
    MODEL_PROPERTY,
    TEMPERATURE_PROPERTY,
    CallContext,
    Tool,
    ToolResult,
    object_schema,
    resolve_tool_model,
)
from tools_app.tools.files import FILE_IDS_SCHEMA, resolve_files
from tools_app.tools.messages import turn_messages
from tools_app.turns import keep_turn

STANCES = {
    "for": "Argue the strongest honest case FOR the proposal; concede real blockers plainly.",
    "against": "Argue the strongest honest case AGAINST the proposal; acknowledge what is genuinely good.",
    "neutral": "Weigh the proposal impartially: benefits, risks, alternatives.",
}
VIEW_PROMPT = (
    "You are one of several expert models consulted on a technical question. {stance} Be specific and concise, "
    "and end with a one-line verdict."
)
SYNTHESIS_PROMPT = (
    "You combine the views of several expert models into one recommendation: where they agree, where they differ "
    "and why, and what to do. Do not invent views they did not state."
)


class ConsensusTool(Tool):
    name = "consensus"
    profile = "lean"
    description = (
        "Ask several models in parallel, each with an optional stance (for/against/neutral), and get every view "
        "plus a synthesis. A failing model does not sink the others."
    )
    input_schema = object_schema(
        {
            "prompt": {"type": "string", "minLength": 1, "description": "The question or proposal."},
            "models": {
                "type": "array",
                "minItems": 1,
                "maxItems": 6,
                "items": object_schema(
                    {
                        "model": MODEL_PROPERTY,
                        "stance": {"type": "string", "enum": list(STANCES)},
                        "stance_prompt": {"type": "string", "description": "Replaces the stance's instruction."},
                    },
                    ["model"],
                ),
            },
            "model": {**MODEL_PROPERTY, "description": "The model that writes the synthesis (default auto)."},
            "temperature": TEMPERATURE_PROPERTY,
            "files": FILE_IDS_SCHEMA,
            "continuation_id": CONTINUATION_PROPERTY,
        },
        ["prompt", "models"],
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        prompt_limit_check(arguments, "prompt")
        prompt: str = arguments["prompt"]
        panel = [(await resolve_tool_model(entry["model"]), entry) for entry in arguments["models"]]
        synthesiser = await resolve_tool_model(arguments.get("model"))
        # A temperature one of the models refuses fails the call before any model is asked.
        for resolved in [*(resolved for resolved, _ in panel), synthesiser]:
            check_sampling(resolved.spec, arguments.get("temperature"))
        conversation, history = await database_sync_to_async(conversation_open)(
            user=ctx.user, continuation_id=arguments.get("continuation_id")
        )
        files = await resolve_files(ctx, arguments.get("files") or [])
        await ctx.progress(f"asking {len(panel)} model(s) in parallel")
        outcomes = await asyncio.gather(
            *(self._view(ctx, resolved, entry, prompt, files, history, arguments) for resolved, entry in panel),
            return_exceptions=True,
        )
        views = []
        for (resolved, entry), outcome in zip(panel, outcomes, strict=True):
            if isinstance(outcome, ProviderError | ToolError):
                views.append(
                    {
                        "model": resolved.spec.name,
                        "stance": entry.get("stance", "neutral"),
                        "error": {"code": outcome.code, "message": outcome.message},
                    }
                )
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                views.append({"model": outcome.model, "stance": entry.get("stance", "neutral"), "text": outcome.text})
        answered = [view for view in views if "text" in view]
        if not answered:
            failures = "; ".join(f"{v['model']}: {v['error']['message']}" for v in views)
            raise ToolError("provider_error", f"every model failed: {failures}")
        synthesis, synthesis_model = await self._synthesis(ctx, synthesiser, arguments, prompt, answered)
        text = render(views, synthesis)
        resolved = panel[0][0]
        conversation = await keep_turn(
            user=ctx.user,
            conversation=conversation,
            tool=self.name,
            prompt=prompt,
            reply=text,
            provider=resolved.provider.name,
            model=synthesis_model or resolved.spec.name,
            tokens_in=ctx.tokens_in,
            tokens_out=ctx.tokens_out,
            metadata={"request_id": ctx.request_id},
        )
        return ToolResult(
            text,
            {
                "provider": resolved.provider.name,
                "model": synthesis_model,
                "continuation_id": str(conversation.id),
                "remaining_turns": conversation.remaining_turns,
                "views": [{k: v for k, v in view.items() if k != "text"} for view in views],
            },
        )

    async def _view(
        self,
        ctx: CallContext,
        resolved: ResolvedModel,
        entry: dict[str, Any],
        prompt: str,
        files: list[Any],
        history: list[ChatMessage],
        arguments: dict[str, Any],
    ) -> Any:
        stance = entry.get("stance_prompt") or STANCES[entry.get("stance", "neutral")]
        messages, _ = await turn_messages(
            ctx, resolved, system=VIEW_PROMPT.format(stance=stance), request=prompt, files=files, history=history
        )
        return await ctx.call_provider(resolved, messages, temperature=arguments.get("temperature"))

    async def _synthesis(
        self,
        ctx: CallContext,
        resolved: ResolvedModel,
        arguments: dict[str, Any],
        prompt: str,
        answered: list[dict[str, Any]],
    ) -> tuple[str, str | None]:
        """The combined recommendation; if its model fails, the views stand alone, saying so."""
        try:
            views = "\n\n".join(f"### {v['model']} ({v['stance']})\n{v['text']}" for v in answered)
            messages: list[ChatMessage] = [
                {"role": "system", "content": SYNTHESIS_PROMPT},
                {"role": "user", "content": f"Question:\n{prompt}\n\nViews:\n\n{views}"},
            ]
            await ctx.progress(f"synthesising with {resolved.spec.name}")
            reply = await ctx.call_provider(resolved, messages, temperature=arguments.get("temperature"))
        except (ProviderError, ToolError) as exc:
            return f"(no synthesis: {exc.message})", None
        return reply.text, reply.model


def render(views: list[dict[str, Any]], synthesis: str) -> str:
    parts = []
    for view in views:
        body = view["text"] if "text" in view else f"(failed: {view['error']['code']}: {view['error']['message']})"
        parts.append(f"## {view['model']} ({view['stance']})\n\n{body}")
    parts.append(f"## Synthesis\n\n{synthesis}")
    return "\n\n".join(parts)
