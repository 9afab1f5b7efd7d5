"""The context a call runs in, and the one path every provider request takes.

`CallContext.provider_request` is that path: chat, function calling, web search, the files
API, the model list's callers and the error investigator all go through it, so each request
gets the same circuit breaker, throttle slots (user, global, provider), error capture and
timings for its latency sample. A 429 is waited out inside the call's deadline (by the
provider's Retry-After) and lowers that provider's concurrency for a while.

`CallContext.call_provider` is the chat request on top: it refuses a sampling setting the
model pins before anything is sent, streams answer and reasoning to the caller, and when
the tool's deadline comes first returns what streamed so far, marked as cut.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from exai_site.outages import now_or_later
from tools_app.budgets import add_spent, check_budget
from tools_app.circuit import Passage, get_circuit_breaker
from tools_app.errors import ToolError
from tools_app.observers import CallSample, call_context, call_finished, provider_failed
from tools_app.pricing import call_cost
from tools_app.providers import ChatResult, Provider, ProviderError, ResolvedModel
from tools_app.providers.replies import ReplyCollector
from tools_app.providers.types import ChatMessage, ModelSpec, ThinkingMode
from tools_app.throttle import get_throttle
from tools_app.throttle.adaptive import provider_rate_limited
from tools_app.throttle.base import SlotWaits
from tools_app.turns import MARKER_TTL_MS, keep_turn, turn_marker

logger = logging.getLogger(__name__)

TextCallback = Callable[[str], Awaitable[None]]
LogCallback = Callable[[str, str, str], Awaitable[None]]  # (level, logger, message), MCP's log levels
T = TypeVar("T")

# Waits for a rate-limited provider: its Retry-After, else these, for at most this many tries.
_RATE_LIMIT_WAITS_S = (1.0, 2.0, 4.0, 8.0)
# A throttle wait at least this long is told to the caller (CallContext.log).
THROTTLE_LOG_MS = 100.0
# Of a tool's deadline, what is kept back to store a cut answer in its thread and reply:
# this long, or a tenth of a shorter deadline.
_DEADLINE_MARGIN_S = 1.0


class LatencyMetrics(TypedDict):
    total_latency_ms: float
    global_sem_wait_ms: float
    provider_sem_wait_ms: float
    processing_ms: float
    user_sem_wait_ms: float
    conversation_wait_ms: float


def check_sampling(spec: ModelSpec, temperature: float | None) -> None:
    """Refuse, before any request, a temperature the model does not accept."""
    fixed = spec.fixed_temperature
    if temperature is not None and fixed is not None and temperature != fixed:
        raise ToolError(
            "invalid_arguments",
            f"{spec.name} takes no temperature but {fixed:g} (its provider pins sampling while it thinks); "
            "leave temperature out, or choose a model without pinned sampling.",
        )


@dataclass
class CallContext:
    """What one call knows about its caller, and where its timings accumulate."""

    user: AbstractBaseUser | None
    request_id: str
    on_progress: TextCallback | None = None
    on_stream: TextCallback | None = None
    on_reasoning: TextCallback | None = None
    on_log: LogCallback | None = None
    # Whose per-user slots provider requests hold; the user's id unless a background job names itself.
    owner: Any = None
    # The call's deadline (seconds) and when it passes (perf_counter), so a provider request
    # can stop just before it: see `set_deadline`.
    deadline_s: float | None = None
    deadline_at: float | None = None
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
    reasoning_tokens: int = 0
    cached_tokens: int = 0  # of tokens_in, those the provider had cached (billed at its hit price)
    # What the replies cost (tools_app/pricing.py), and the models among them with no price.
    spent_usd: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    # The thread this call will keep a turn of, when the tool knows it before asking the model:
    # the provider request's way out then marks it as being written in the same Redis round
    # trip (tools_app/turns.py).
    keeps_turn_of: uuid.UUID | None = None
    thread_marked: bool = False
    turn_kept: bool = False

    def set_deadline(self, seconds: float) -> None:
        self.deadline_s, self.deadline_at = seconds, time.perf_counter() + seconds

    @property
    def slot_owner(self) -> Any:
        return self.owner if self.owner is not None else getattr(self.user, "pk", None)

    def latency_metrics(self) -> LatencyMetrics:
        """The call's timings so far, as `metadata.latency_metrics` reports them."""
        return {
            "total_latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
            "global_sem_wait_ms": round(self.global_sem_wait_ms, 3),
            "provider_sem_wait_ms": round(self.provider_sem_wait_ms, 3),
            "processing_ms": round(self.processing_ms, 3),
            "user_sem_wait_ms": round(self.user_sem_wait_ms, 3),
            "conversation_wait_ms": round(self.conversation_wait_ms, 3),
        }

    async def progress(self, message: str) -> None:
        if self.on_progress is not None:
            await self.on_progress(message)

    async def log(self, level: str, provider: str, message: str) -> None:
        """Tell the caller how its call goes (MCP clients get it as a log message), never a secret."""
        if self.on_log is not None:
            await self.on_log(level, f"exai.{provider}", message)

    async def provider_request(
        self, provider: Provider, work: Callable[[], Awaitable[T]], *, model: str | None = None, operation: str = "chat"
    ) -> T:
        """Run one provider request behind its circuit breaker and inside its throttle slots.

        The slots are those of `provider`, whatever the tool. An open circuit fails fast before
        any slot is taken; the outcome is counted as the slots are given back (with Redis, one
        round trip in and one out: `Throttle.gated_slots`). A reply that survived a fault (a
        stream cut after some text) is returned, and its fault counted and captured like an error.
        """
        # A call that would start over its user's budget sends nothing (tools_app/budgets.py).
        await check_budget(getattr(self.user, "pk", None))
        self.provider, self.model = provider.name, model or self.model
        call_context.set({**(call_context.get() or {}), "provider": provider.name, "model": self.model})
        probe_ttl_ms = int((provider.timeout_s + 5) * 1000)
        mark = turn_marker(self.keeps_turn_of) if self.keeps_turn_of and settings.REDIS_URL else None
        for attempt in itertools.count():
            passage = Passage(provider.name, provider.label, probe_ttl_ms, mark=mark, mark_ttl_ms=MARKER_TTL_MS)
            try:
                async with self.provider_work(provider.name, passage):
                    try:
                        result = await work()
                    except ProviderError as exc:
                        passage.finish(exc)
                        raise
                    fault = result.fault if isinstance(result, ChatResult) else None
                    passage.finish(fault)
            except ProviderError as exc:
                if not passage.finished:  # the open circuit refused it: no request was made
                    await self.log("error", provider.name, exc.message)
                    raise
                if passage.probe:
                    await self.log(
                        "warning",
                        provider.name,
                        f"{provider.label} failed its circuit's probe ({exc.code}): the circuit opens again",
                    )
                provider_failed(exc, {"status": exc.status, "retryable": exc.retryable, "operation": operation})
                if exc.status == 429:
                    provider_rate_limited(provider.name)  # fewer requests at once, for a while
                wait = self._rate_limit_wait(exc, attempt)
                if wait is None:
                    raise
                await self.progress(f"{provider.label} is rate limiting; trying again in {wait:.1f}s")
                await self.log(
                    "warning",
                    provider.name,
                    f"{provider.label} answered 429; trying again in {wait:.1f}s",
                )
                await asyncio.sleep(wait)
                continue
            if passage.probe:
                await self.log(
                    "notice", provider.name, f"{provider.label} passed its circuit's probe: the circuit closes"
                )
            if fault is not None:
                provider_failed(fault, {"status": fault.status, "operation": operation})
            self.thread_marked = self.thread_marked or passage.marked
            return result
        raise AssertionError("itertools.count() never ends")  # for the type checker

    def _rate_limit_wait(self, exc: ProviderError, attempt: int) -> float | None:
        """How long to wait before trying a rate-limited request again; None = give up now."""
        if exc.status != 429 or attempt >= len(_RATE_LIMIT_WAITS_S):
            return None
        wait = exc.retry_after_s if exc.retry_after_s is not None else _RATE_LIMIT_WAITS_S[attempt]
        if self.deadline_at is not None and time.perf_counter() + wait + _DEADLINE_MARGIN_S >= self.deadline_at:
            return None
        return wait

    async def call_provider(
        self,
        resolved: ResolvedModel,
        messages: list[ChatMessage],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        thinking_mode: ThinkingMode | None = None,
        web_search: bool = False,
        response_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        """One chat completion: streamed to the caller, bounded by the tool's deadline.

        `temperature` is the caller's explicit choice: a model that pins it refuses the call
        with `invalid_arguments`. `web_search` turns on the provider's built-in search, where
        the model has one. When the deadline comes while the model is still writing, what it
        wrote is returned with finish_reason `deadline`.
        """
        provider, spec = resolved.provider, resolved.spec
        check_sampling(spec, temperature)
        reply = ReplyCollector(spec.name, self.on_stream, self.on_reasoning)
        opened = time.perf_counter()

        def chat() -> Awaitable[ChatResult]:
            return provider.chat(
                spec=spec,
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                reply=reply,
                thinking_mode=thinking_mode,
                response_format=response_format,
                web_search=web_search and spec.web_search,
            )

        try:
            async with self._before_deadline():
                result = await self.provider_request(provider, chat, model=spec.name)
        except TimeoutError:
            if not reply.text.strip():
                raise ToolError(
                    "timeout",
                    f"the call's deadline of {self.deadline_s:g}s passed before {spec.name} began its answer"
                    + (" (it was still thinking)." if reply.result.ttft_ms is not None else "."),
                ) from None
            result = reply.cut("deadline")
        if self.ttft_ms is None and reply.result.ttft_ms is not None:
            self.ttft_ms = (opened - self.started) * 1000 + reply.result.ttft_ms
        self.tokens_in += result.tokens_in
        self.tokens_out += result.tokens_out
        self.reasoning_tokens += result.reasoning_tokens
        self.cached_tokens += result.cached_tokens
        priced_as = result.model or spec.name
        cost = call_cost(
            priced_as, tokens_in=result.tokens_in, cached_tokens=result.cached_tokens, tokens_out=result.tokens_out
        )
        if cost is None:
            self.unpriced.add(priced_as)
        else:
            self.spent_usd += cost
            user_id = getattr(self.user, "pk", None)
            if user_id is not None:
                await now_or_later("count a reply's cost", lambda: add_spent(user_id, cost))
        return result

    def sample(self, tool: str, status: str, **overrides: Any) -> CallSample:
        """This call as the observers get it when it ends: its timings, the provider and model
        it called last, its tokens and cost (`overrides` for what the caller knows better)."""
        fields: dict[str, Any] = {
            "user_id": getattr(self.user, "pk", None),
            "request_id": self.request_id,
            "provider": self.provider,
            "model": self.model,
            "ttft_ms": self.ttft_ms,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
        }
        if "metrics" not in overrides:
            fields["metrics"] = self.latency_metrics()
        return CallSample(tool=tool, status=status, **{**fields, **overrides})

    @property
    def cost_usd(self) -> float | None:
        """What the call's provider replies cost, or None when one of their models has no price."""
        return None if self.unpriced else round(self.spent_usd, 8)

    def cost_metadata(self) -> dict[str, Any]:
        """`cost_usd` (and, without a price, which models lack one) for a result's metadata."""
        if not self.unpriced:
            return {"cost_usd": self.cost_usd, "cached_tokens": self.cached_tokens}
        return {
            "cost_usd": None,
            "cached_tokens": self.cached_tokens,
            "cost_note": f"no price for {', '.join(sorted(self.unpriced))} (EXAI_PRICES_FILE adds one)",
        }

    @asynccontextmanager
    async def _before_deadline(self) -> AsyncIterator[None]:
        """Stop the body just before the tool's deadline, leaving time to keep what it produced."""
        if self.deadline_at is None or self.deadline_s is None:
            yield
            return
        loop = asyncio.get_running_loop()
        margin = min(_DEADLINE_MARGIN_S, self.deadline_s / 10)
        remaining = self.deadline_at - margin - time.perf_counter()
        async with asyncio.timeout_at(loop.time() + max(0.0, remaining)):
            yield

    async def record_turn(
        self, *, conversation: Any, tool: str, prompt: str, resolved: ResolvedModel, reply: ChatResult, **metadata: Any
    ) -> Any:
        """Keep the question and the model's answer as a turn of the thread (creating it); return the thread.

        The turn is written just after the answer goes out (tools_app/turns.py); the thread's
        next turn waits for that.
        """
        self.turn_kept = True
        return await keep_turn(
            user=self.user,
            conversation=conversation,
            thread_id=self.keeps_turn_of,
            marked=self.thread_marked,
            tool=tool,
            prompt=prompt,
            reply=reply.text,
            provider=resolved.provider.name,
            model=reply.model,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            metadata={"request_id": self.request_id, "finish_reason": reply.finish_reason, **metadata},
        )

    @asynccontextmanager
    async def provider_work(self, provider: str, passage: Passage) -> AsyncIterator[float]:
        """Hold this call's slots (user, global, provider) around one piece of provider work,
        behind the provider's circuit breaker (with Redis, one round trip in and one out).

        The waits and the work's own time land in the latency metrics; yields when the work started.
        """
        async with get_throttle().gated_slots(
            provider=provider, user_id=self.slot_owner, passage=passage, breaker=get_circuit_breaker()
        ) as waits:
            self.user_sem_wait_ms += waits.user_ms
            self.global_sem_wait_ms += waits.global_ms
            self.provider_sem_wait_ms += waits.provider_ms
            if passage.probe:
                await self.log("notice", provider, f"{passage.label}'s circuit is half-open: this request is its probe")
            await self._log_waits(provider, waits)
            started = time.perf_counter()
            try:
                yield started
            finally:
                self.processing_ms += (time.perf_counter() - started) * 1000

    async def _log_waits(self, provider: str, waits: SlotWaits) -> None:
        parts = [
            f"{ms / 1000:.1f}s for {what}"
            for ms, what in (
                (waits.user_ms, "your own calls' slot"),
                (waits.global_ms, "a server-wide slot"),
                (waits.provider_ms, f"a {provider} slot"),
            )
            if ms >= THROTTLE_LOG_MS
        ]
        if parts:
            await self.log("info", provider, "throttled: waited " + ", ".join(parts))


@asynccontextmanager
async def background_call(operation: str) -> AsyncIterator[CallContext]:
    """A context for provider work outside any tool call (the error investigator, file cleanup).

    Its requests take the one path like a tool's, hold slots under `operation`'s name instead
    of a user's, stop at the model-call deadline (EXAI_TOOL_TIMEOUT_S), and leave one latency
    sample named after `operation`.
    """
    ctx = CallContext(user=None, request_id=f"{operation}-{uuid.uuid4().hex[:12]}", owner=operation)
    ctx.set_deadline(settings.EXAI_TOOL_TIMEOUT_S)
    status = "ok"
    try:
        yield ctx
    except ProviderError as exc:
        status = exc.code
        raise
    except ToolError as exc:
        status = exc.code
        raise
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    except Exception:
        status = "internal"
        raise
    finally:
        call_finished(ctx.sample(operation, status))


def reply_metadata(reply: ChatResult) -> dict[str, Any]:
    """What a tool's result says about the model's reply: tokens, reasoning, and how it ended."""
    metadata: dict[str, Any] = {
        "tokens_in": reply.tokens_in,
        "tokens_out": reply.tokens_out,
        "reasoning_tokens": reply.reasoning_tokens,
        "cached_tokens": reply.cached_tokens,
        "finish_reason": reply.finish_reason,
    }
    if reply.incomplete:
        metadata["incomplete"] = True
    return metadata
