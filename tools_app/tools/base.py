"""The base class of every tool, the context a call runs in, and the error tools raise."""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from errors_app.capture import call_context, capture_exception
from tools_app.circuit import get_circuit_breaker
from tools_app.conversations import conversation_record_turn
from tools_app.errors import ToolError
from tools_app.providers import ChatResult, ProviderError, ResolvedModel, UnknownModel, available_models, resolve_model
from tools_app.providers.base import ChatMessage
from tools_app.throttle import get_throttle

TextCallback = Callable[[str], Awaitable[None]]


@dataclass
class ToolResult:
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallContext:
    """What one tool call knows about its caller, and where its timings accumulate."""

    user: AbstractBaseUser
    request_id: str
    on_progress: TextCallback | None = None
    on_stream: TextCallback | None = None
    user_sem_wait_ms: float = 0.0
    global_sem_wait_ms: float = 0.0
    provider_sem_wait_ms: float = 0.0
    conversation_wait_ms: float = 0.0
    processing_ms: float = 0.0
    # What the metrics sample records: the provider and model last called (known even when
    # the call fails), time to first token of the first call, tokens of all of them.
    provider: str | None = None
    model: str | None = None
    ttft_ms: float | None = None  # from the start of the tool call, waits included: what the caller sees
    started: float = field(default_factory=time.perf_counter)
    tokens_in: int = 0
    tokens_out: int = 0

    async def progress(self, message: str) -> None:
        if self.on_progress is not None:
            await self.on_progress(message)

    async def call_provider(
        self,
        resolved: ResolvedModel,
        messages: list[ChatMessage],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        web_search: bool = False,
    ) -> ChatResult:
        """Run one provider call behind its circuit breaker and inside its throttle slots.

        `web_search` turns on the provider's built-in search, where the model has one.

        The slots are those of the provider the model resolved to, whatever the tool. An open
        circuit fails fast before any slot is taken; the outcome is recorded after the slots
        are given back, so the breaker's round trip never holds capacity.
        """
        provider = resolved.provider
        self.provider, self.model = provider.name, resolved.spec.name
        call_context.set({**(call_context.get() or {}), "provider": provider.name, "model": resolved.spec.name})
        breaker = get_circuit_breaker()
        admission = await breaker.admit(provider.name, provider.label, probe_ttl_s=provider.timeout_s + 5)
        try:
            result = await self._call_in_slots(
                resolved, messages, temperature, max_tokens, web_search and resolved.spec.web_search
            )
        except ProviderError as exc:
            capture_exception(exc, context={"status": exc.status, "retryable": exc.retryable})
            await breaker.record(provider.name, exc, probe=admission.probe)
            raise
        await breaker.record(provider.name, None, probe=admission.probe)
        self.tokens_in += result.tokens_in
        self.tokens_out += result.tokens_out
        return result

    async def _call_in_slots(
        self,
        resolved: ResolvedModel,
        messages: list[ChatMessage],
        temperature: float | None,
        max_tokens: int | None,
        web_search: bool,
    ) -> ChatResult:
        provider = resolved.provider
        async with self.provider_work(provider.name) as started:
            result = await provider.chat(
                model=resolved.spec.name,
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                on_delta=self.on_stream,
                web_search=web_search,
            )
        if self.ttft_ms is None and result.ttft_ms is not None:
            self.ttft_ms = (started - self.started) * 1000 + result.ttft_ms
        return result

    async def record_turn(
        self, *, conversation: Any, tool: str, prompt: str, resolved: ResolvedModel, reply: ChatResult, **metadata: Any
    ) -> Any:
        """Keep the question and the model's answer as a turn of the thread (creating it); return the thread."""
        return await database_sync_to_async(conversation_record_turn)(
            user=self.user,
            conversation=conversation,
            tool=tool,
            prompt=prompt,
            reply=reply.text,
            provider=resolved.provider.name,
            model=reply.model,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            metadata={"request_id": self.request_id, **metadata},
        )

    @asynccontextmanager
    async def provider_work(self, provider: str) -> AsyncIterator[float]:
        """Hold this call's slots (user, global, provider) around one piece of provider work.

        The waits and the work's own time land in the latency metrics; yields when the work started.
        """
        async with get_throttle().slots(provider=provider, user_id=self.user.pk) as waits:
            self.user_sem_wait_ms += waits.user_ms
            self.global_sem_wait_ms += waits.global_ms
            self.provider_sem_wait_ms += waits.provider_ms
            started = time.perf_counter()
            try:
                yield started
            finally:
                self.processing_ms += (time.perf_counter() - started) * 1000


class Tool(abc.ABC):
    """One tool: a name, a compact description, a JSON Schema for its arguments, and `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    input_schema: ClassVar[dict[str, Any]]
    # Which deadline applies (EXAI_SIMPLE_/WORKFLOW_/EXPERT_TIMEOUT_S): `simple` tools make no
    # provider call, `workflow` tools only on their final step, `expert` tools on every call.
    kind: ClassVar[str] = "expert"
    # The smallest profile (lean < standard < full) whose tools/list includes this tool.
    profile: ClassVar[str] = "standard"

    # Identical calls at temperature 0 may be answered from the response cache (`use_cache`).
    cacheable: ClassVar[bool] = False

    @abc.abstractmethod
    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult: ...

    def deadline_s(self, arguments: dict[str, Any]) -> float:
        """This call's hard deadline, by the kind of work it does."""
        if self.kind == "simple":
            return settings.EXAI_SIMPLE_TIMEOUT_S
        if self.kind == "workflow":
            return settings.EXAI_WORKFLOW_TIMEOUT_S
        return settings.EXAI_TOOL_TIMEOUT_S

    def descriptor(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema}


def resolve_tool_model(name: str | None) -> ResolvedModel:
    """The model a tool call names (or `auto`), as a ToolError the caller can act on when it cannot be had."""
    try:
        return resolve_model(name)
    except UnknownModel as exc:
        names = ", ".join(spec.name for spec in available_models()) or "none configured"
        raise ToolError(
            "invalid_arguments", f"unknown model {exc.args[0]!r}; available: auto, kimi, glm, {names}."
        ) from None
    except ProviderError as exc:
        raise ToolError(exc.code, exc.message) from None


# Schema fragments the chat-like tools share: each is defined, and described, once.
MODEL_PROPERTY: dict[str, Any] = {
    "type": "string",
    "description": "Model name or alias: auto, kimi, glm (see listmodels).",
}
TEMPERATURE_PROPERTY: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1}
CONTINUATION_PROPERTY: dict[str, Any] = {"type": "string", "description": "Thread id from an earlier reply."}
USE_CACHE_PROPERTY: dict[str, Any] = {"type": "boolean", "description": "false: never answer from the cache."}


def object_schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }
