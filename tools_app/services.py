"""The one tool-call path that the EXAI WebSocket, MCP (all transports) and REST share."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import cache
from typing import Any, NotRequired, TypedDict

import jsonschema
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from exai_site.outages import RETRY_AFTER_S, unreachable_message, unreachable_service
from exai_site.redaction import scrub
from tools_app import mcp_resources
from tools_app.budgets import BudgetExceeded
from tools_app.calls import LogCallback
from tools_app.context_window import FILE_ADVICE
from tools_app.errors import ToolError
from tools_app.lifecycle import get_lifecycle
from tools_app.observers import call_context, call_finished
from tools_app.providers import ProviderError, catalogue_models, configured_providers, model_aliases
from tools_app.ratelimit import RateLimited, user_call_admit
from tools_app.responses import cache_key, cached_reply, cut_long_reply, remember_reply
from tools_app.streaming import DeltaCoalescer
from tools_app.throttle import Overloaded
from tools_app.tools import ALWAYS_ON, REGISTRY, enabled_tools
from tools_app.tools.base import CallContext, TextCallback, Tool, ToolResult
from tools_app.turns import flush_turns, thread_ready, unmark_later

logger = logging.getLogger(__name__)


class TextOutput(TypedDict):
    type: str
    text: str
    metadata: dict[str, Any]


class ErrorBody(TypedDict):
    code: str
    message: str
    retry_after_s: NotRequired[float]  # `overloaded` by a rate limit: when the next call would pass
    # `budget_exceeded`: which budget, what was spent and is allowed (USD), when it resets.
    period: NotRequired[str]
    spent_usd: NotRequired[float]
    allowed_usd: NotRequired[float]
    resets_at: NotRequired[str]


class CallOutcome(TypedDict):
    """The payload of `call_tool_res`: either outputs and text, or an error."""

    outputs: NotRequired[list[TextOutput]]
    text: NotRequired[str]
    error: NotRequired[ErrorBody]


def tool_descriptors() -> list[dict[str, Any]]:
    return [tool.descriptor() for tool in enabled_tools().values()]


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(REGISTRY[name].input_schema)


def validate_arguments(name: str, arguments: Any) -> dict[str, Any]:
    """Check arguments against the tool's JSON Schema; raise ToolError naming the first problem."""
    if not isinstance(arguments, dict):
        raise ToolError("invalid_arguments", f"arguments must be a JSON object, not {type(arguments).__name__}.")
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(arguments))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path)
        raise ToolError("invalid_arguments", f"{name}: {where + ': ' if where else ''}{error.message}")
    _check_text_bounds(name, arguments)
    return arguments


def _check_text_bounds(name: str, arguments: dict[str, Any]) -> None:
    """Every text field, at any depth, holds at most EXAI_MAX_PROMPT_CHARS, and a call's text all
    together at most EXAI_MAX_ARGUMENT_CHARS: what is stored (threads, steps) and sent to a
    provider stays bounded whichever field carries it. Longer text belongs in a file."""
    limit, total, stack = settings.EXAI_MAX_PROMPT_CHARS, 0, [("", arguments)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if len(value) > limit:
                raise ToolError(
                    "invalid_arguments",
                    f"{name}: {where} is {len(value):,} characters, over the limit of {limit:,}; {FILE_ADVICE}",
                )
            total += len(value)
        elif isinstance(value, dict):
            stack.extend((f"{where}.{key}" if where else str(key), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
    if total > settings.EXAI_MAX_ARGUMENT_CHARS:
        raise ToolError(
            "invalid_arguments",
            f"{name}: the arguments hold {total:,} characters of text, over the limit of "
            f"{settings.EXAI_MAX_ARGUMENT_CHARS:,}; {FILE_ADVICE}",
        )


def error_outcome(code: str, message: str) -> CallOutcome:
    # No key, token or URL credential reaches a user through an error message either.
    return {"error": {"code": code, "message": scrub(message)}}


def failure_outcome(exc: BaseException, internal_message: str, *, failed: str) -> CallOutcome:
    """What an unexpected failure answers: retryable `overloaded` when a service is down
    (exai_site/outages.py), else `internal`, logged (with its traceback) as `failed`."""
    service = unreachable_service(exc)
    if service is None:
        logger.error("%s failed", failed, exc_info=exc)
        return error_outcome("internal", internal_message)
    return {"error": {"code": "overloaded", "message": unreachable_message(service), "retry_after_s": RETRY_AFTER_S}}


def rate_limited_outcome(exc: RateLimited) -> CallOutcome:
    return {"error": {"code": "overloaded", "message": exc.message, "retry_after_s": exc.retry_after_s}}


def shutting_down_outcome() -> CallOutcome:
    return error_outcome("shutting_down", "the server is restarting; retry in a moment")


def interrupted_outcome() -> CallOutcome:
    """What a call cancelled from outside answers: the client's cancel, or the server's drain."""
    if get_lifecycle().draining:
        return shutting_down_outcome()
    return error_outcome("cancelled", "call cancelled")


async def tool_call(
    *,
    user: AbstractBaseUser,
    name: str,
    arguments: Any,
    request_id: str,
    on_progress: TextCallback | None = None,
    on_stream: TextCallback | None = None,
    on_reasoning: TextCallback | None = None,
    on_log: LogCallback | None = None,
) -> CallOutcome:
    """Run one tool call to completion and return its outcome; never raise except on cancellation.

    `on_stream` gets the answer's text as the model streams it, `on_reasoning` a thinking
    model's reasoning (never part of the answer), `on_log` what the caller may want to know
    of how the call went (level, logger, message): provider retries, throttle waits, circuits.
    """
    lifecycle = get_lifecycle()
    if lifecycle.draining:
        return shutting_down_outcome()
    ctx = CallContext(
        user=user,
        request_id=request_id,
        on_progress=on_progress,
        on_stream=on_stream,
        on_reasoning=on_reasoning,
        on_log=on_log,
    )
    task = asyncio.current_task()
    if task is not None:
        lifecycle.track(task)
    context_token = call_context.set({"tool": name, "request_id": request_id, "user_id": getattr(user, "pk", None)})
    outcome: CallOutcome | None = None
    try:
        await user_call_admit(getattr(user, "pk", None))
        tool = _callable_tool(name)
        validate_arguments(tool.name, arguments)
        # A thread whose last answer is still being written goes on after it (tools_app/turns.py).
        await thread_ready(arguments.get("continuation_id"))
        deadline_s = tool.deadline_s(arguments)
        key = cache_key(tool, getattr(user, "pk", None), arguments)
        result = await cached_reply(key)
        if result is None:
            # The expert deadline sits above every provider timeout (system check exai.E004),
            # so a silent provider fails as its own `timeout` first; a provider request stops
            # just before this deadline (CallContext.call_provider) and keeps what streamed.
            ctx.set_deadline(deadline_s)
            try:
                async with asyncio.timeout(deadline_s):
                    result = await tool.run(ctx, arguments)
            except TimeoutError:
                raise ToolError("timeout", f"{name} exceeded its deadline of {deadline_s:g}s.") from None
            if not result.metadata.get("incomplete"):
                await remember_reply(key, result)
        outcome = _success(ctx, await cut_long_reply(result, getattr(user, "pk", None)))
    except BudgetExceeded as exc:
        outcome = error_outcome(exc.code, exc.message)
        outcome["error"].update(exc.details)  # type: ignore[typeddict-item]
    except ToolError as exc:
        outcome = error_outcome(exc.code, exc.message)
    except ProviderError as exc:
        outcome = error_outcome(exc.code, exc.message)
    except RateLimited as exc:
        outcome = rate_limited_outcome(exc)
    except Overloaded as exc:
        outcome = error_outcome(
            "overloaded",
            f"no {exc.pool} slot became free within {settings.EXAI_QUEUE_TIMEOUT_S:g}s; retry later.",
        )
    except asyncio.CancelledError:
        outcome = interrupted_outcome()  # recorded as such; the cancellation goes on up
        raise
    except Exception as exc:
        outcome = failure_outcome(
            exc,
            f"{name} failed with an internal error; it has been logged.",
            failed=f"tool {name} (request {request_id})",
        )
    finally:
        if ctx.thread_marked and not ctx.turn_kept:  # answered by the model, then failed: no turn to wait for
            unmark_later(ctx.keeps_turn_of)
        call_context.reset(context_token)
        if task is not None:
            lifecycle.untrack(task)
        _record(ctx, name if isinstance(name, str) else repr(name), arguments, outcome)
    return outcome


def _callable_tool(name: Any) -> Tool:
    """The tool by that name. The profile only trims what tools/list advertises (the context
    cost); any tool stays callable by name unless EXAI_DISABLED_TOOLS switches it off."""
    tool = REGISTRY.get(name) if isinstance(name, str) else None
    if tool is None:
        raise ToolError("unknown_tool", f"unknown tool {name!r}; available: {', '.join(enabled_tools())}.")
    if name in settings.EXAI_DISABLED_TOOLS and name not in ALWAYS_ON:
        raise ToolError("unknown_tool", f"tool {name!r} is disabled on this server (EXAI_DISABLED_TOOLS).")
    return tool


def _success(ctx: CallContext, result: ToolResult) -> CallOutcome:
    metadata = {
        "provider": None,
        "model": None,
        "continuation_id": None,
        "cache_hit": False,
        **result.metadata,
        # A reply from the response cache cost nothing now; its first asking did.
        **ctx.cost_metadata(),
        "latency_metrics": ctx.latency_metrics(),
    }
    return {"outputs": [{"type": "text", "text": result.text, "metadata": metadata}], "text": result.text}


def _record(ctx: CallContext, name: str, arguments: Any, outcome: CallOutcome | None) -> None:
    """One sample per call, whatever its outcome, to the call observers (metrics_app records it)."""
    error = (outcome or {}).get("error")
    outputs = (outcome or {}).get("outputs")
    metadata: dict[str, Any] = outputs[0]["metadata"] if outputs else {}
    call_finished(
        ctx.sample(
            name,
            error["code"] if error else ("cancelled" if outcome is None else "ok"),
            metrics=metadata.get("latency_metrics") or ctx.latency_metrics(),
            provider=metadata.get("provider") or ctx.provider,
            model=metadata.get("model") or ctx.model,
            # The text the caller sent and got, UTF-8: the arguments' strings, and the reply.
            bytes_in=sum(len(v.encode()) for v in arguments.values() if isinstance(v, str))
            if isinstance(arguments, dict)
            else 0,
            bytes_out=len((outcome or {}).get("text", "").encode()),
            cache_hit=bool(metadata.get("cache_hit")),
        )
    )


# MCP has no stream for the answer or the reasoning: both go out as progress messages, marked,
# at most one of each this often (and a heartbeat when nothing else was said for a while).
MCP_PROGRESS_INTERVAL_S = 1.0


class McpProgress:
    """What an MCP client sees of a call while it runs: the tool's own progress messages as
    they come, then what the model streams — `reasoning: …` and `answer: …`, each the text
    since the previous message (so together they carry everything streamed, in order) — and
    `working (Ns)` whenever nothing else was sent for EXAI_HEARTBEAT_S."""

    def __init__(self, send: TextCallback) -> None:
        self._send = send
        self._started = self._last = time.monotonic()
        self.reasoning = DeltaCoalescer(lambda text: self._say(f"reasoning: {text}"), MCP_PROGRESS_INTERVAL_S)
        self._answer = DeltaCoalescer(lambda text: self._say(f"answer: {text}"), MCP_PROGRESS_INTERVAL_S)
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def _say(self, message: str) -> None:
        self._last = time.monotonic()
        await self._send(message)

    async def status(self, message: str) -> None:
        await self._say(message)

    async def answer(self, delta: str) -> None:
        await self.reasoning.close()  # what it thought goes out before what it answers
        await self._answer.push(delta)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._last + settings.EXAI_HEARTBEAT_S - time.monotonic()))
            if time.monotonic() - self._last >= settings.EXAI_HEARTBEAT_S:
                await self._say(f"working ({time.monotonic() - self._started:.0f}s)")

    async def close(self) -> None:
        """Stop the heartbeat and send what is left, before the call's result."""
        self._heartbeat.cancel()
        await self.reasoning.close()
        await self._answer.close()


class LocalToolBackend:
    """MCP's view of this server's own tools and the user's resources, on behalf of one
    authenticated user."""

    def __init__(self, user: AbstractBaseUser) -> None:
        self.user = user

    async def list_tools(self) -> list[dict[str, Any]]:
        return tool_descriptors()

    async def complete_argument(self, name: str, value: str) -> list[str]:
        if name == "model":
            names = [*model_aliases()]
            for provider in configured_providers():
                names += [spec.name for spec in await catalogue_models(provider)]
            return list(dict.fromkeys(names))
        if name == "continuation_id":
            await flush_turns()  # a thread answered a moment ago is offered too
            return await database_sync_to_async(mcp_resources.complete_ids)(self.user, "threads", value)
        if name in ("files", "file"):
            # A comma-separated list: complete its last item, keeping what comes before.
            head, _, last = value.rpartition(",")
            ids = await database_sync_to_async(mcp_resources.complete_ids)(self.user, "files", last.strip())
            return [f"{head}, {ident}" if head else ident for ident in ids] if head else ids
        return []

    async def list_resources(self, cursor: str | None) -> dict[str, Any]:
        await flush_turns()  # the threads this process answered a moment ago are listed too
        return await database_sync_to_async(mcp_resources.list_resources)(self.user, cursor)

    async def resource_templates(self) -> list[dict[str, Any]]:
        return [kind.template() for kind in mcp_resources.RESOURCE_KINDS.values()]

    async def read_resource(self, uri: str) -> dict[str, Any]:
        await flush_turns()
        return await database_sync_to_async(mcp_resources.read_resource)(self.user, uri)

    def watch_resources(self, on_change: Any) -> Any:
        return mcp_resources.listen_for_changes(self.user.pk, on_change)

    async def complete_resource(self, uri_template: str, variable: str, value: str) -> list[str]:
        await flush_turns()
        return await database_sync_to_async(mcp_resources.complete_variable)(self.user, uri_template, variable, value)

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        request_id: str,
        on_progress: TextCallback | None,
        on_log: LogCallback | None = None,
    ) -> dict[str, Any]:
        progress = McpProgress(on_progress) if on_progress is not None else None
        try:
            outcome = await tool_call(
                user=self.user,
                name=name,
                arguments=arguments,
                request_id=request_id,
                on_progress=progress.status if progress is not None else None,
                on_stream=progress.answer if progress is not None else None,
                on_reasoning=progress.reasoning.push if progress is not None else None,
                on_log=on_log,
            )
        finally:
            if progress is not None:
                await progress.close()  # what is left goes out before the result
        return dict(outcome)
