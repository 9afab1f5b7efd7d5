"""The one base class every provider implements, and the one error they raise."""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict

from django.conf import settings

if TYPE_CHECKING:
    from tools_app.providers.catalogue import Family, ModelCatalogue

ErrorCode = Literal["provider_error", "provider_unavailable", "timeout", "invalid_arguments"]
DeltaCallback = Callable[[str], Awaitable[None]]
# Where a model's thinking is steered (workflow tools' `thinking_mode`); None = the model's default.
ThinkingMode = Literal["minimal", "low", "medium", "high", "max"]

# Appended to an answer that did not end by itself, so a client that shows only the text still sees it.
CUT_NOTES = {
    "deadline": "[answer cut: the call's deadline passed while the model was still writing]",
    "incomplete": "[answer cut: the provider's stream ended before the answer was complete]",
}


class ChatMessage(TypedDict):
    role: str
    content: str | list[dict[str, Any]]


@dataclass(frozen=True)
class ModelSpec:
    """What one model can do; the catalogue builds these from the live list and the family facts."""

    name: str
    provider: str
    context_window: int
    max_output_tokens: int
    vision: bool = False
    web_search: bool = False
    thinking: bool = False
    function_calling: bool = False
    # The only temperature the model accepts; any other is refused before a request is sent.
    fixed_temperature: float | None = None
    description: str = ""
    known: bool = True  # its family's facts apply (else conservative defaults)
    listed: bool = True  # the provider's live list names it (else the list could not be read)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "vision": self.vision,
            "web_search": self.web_search,
            "thinking": self.thinking,
            "function_calling": self.function_calling,
            "fixed_temperature": self.fixed_temperature,
            "description": self.description,
            "known_family": self.known,
            "listed": self.listed,
        }

    def output_budget(self, share: float = 1.0) -> int:
        """The `max_tokens` to send: room for reasoning and answer, never the provider's tiny default."""
        return max(512, int(min(self.max_output_tokens, settings.EXAI_MAX_OUTPUT_TOKENS) * share))


@dataclass
class ChatResult:
    text: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    finish_reason: str | None = None
    ttft_ms: float | None = None
    reasoning: str = ""
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    # A fault the answer survived (a stream cut after some text): recorded, yet the text is returned.
    fault: ProviderError | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def incomplete(self) -> bool:
        return self.finish_reason in CUT_NOTES


class ReplyCollector:
    """Gathers a streamed reply (answer, reasoning, time to first token) and hands each delta on.

    `finish()` judges the stream: one that ended without a finish reason, or spent its whole
    output budget before any answer, is never passed off as a complete answer.
    """

    def __init__(
        self, model: str, on_delta: DeltaCallback | None = None, on_reasoning: DeltaCallback | None = None
    ) -> None:
        self.result = ChatResult(text="", model=model)
        self._on_delta = on_delta
        self._on_reasoning = on_reasoning
        self._parts: list[str] = []
        self._thoughts: list[str] = []
        self._started = time.perf_counter()
        # Why the stream stopped early after some text (silence, a broken connection), if it did.
        self.broken: ProviderError | None = None

    def _first_token(self) -> None:
        if self.result.ttft_ms is None:
            self.result.ttft_ms = (time.perf_counter() - self._started) * 1000

    async def add(self, delta: str) -> None:
        self._first_token()
        self._parts.append(delta)
        if self._on_delta is not None:
            await self._on_delta(delta)

    async def think(self, delta: str) -> None:
        self._first_token()
        self._thoughts.append(delta)
        if self._on_reasoning is not None:
            await self._on_reasoning(delta)

    def take_reasoning(self) -> str:
        """The reasoning streamed since the last call (a tool-call round echoes it back)."""
        text, self._thoughts = "".join(self._thoughts), []
        self.result.reasoning += text
        return text

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def usage(self, usage: Any, *, add: bool = False) -> None:
        """Take token counts from a usage object or dict (`add`: rounds of one call add up)."""
        get = usage.get if isinstance(usage, dict) else lambda key: getattr(usage, key, None)
        details = get("completion_tokens_details") or {}
        prompt_details = get("prompt_tokens_details") or {}
        reasoning = _field(details, "reasoning_tokens")
        cached = _field(prompt_details, "cached_tokens") or _field(usage, "cached_tokens")
        counts = (int(get("prompt_tokens") or 0), int(get("completion_tokens") or 0), reasoning, cached)
        result = self.result
        if add:
            result.tokens_in += counts[0]
            result.tokens_out += counts[1]
            result.reasoning_tokens += counts[2]
            result.cached_tokens += counts[3]
        else:
            result.tokens_in, result.tokens_out, result.reasoning_tokens, result.cached_tokens = counts

    def interrupted(self, error: ProviderError) -> None:
        """The stream stopped early: fail with `error` if no answer came yet, else keep the text (see finish)."""
        if not self.text.strip():
            raise error
        self.broken = error

    def finish(self, label: str) -> ChatResult:
        """The reply as it ended; raise ProviderError where nothing usable came.

        A stream that stopped without a finish reason after some text (the connection closed
        or broke, or the provider fell silent) keeps that text, marked as cut, and carries the
        fault so that it still counts against the provider.
        """
        self.take_reasoning()
        result = self.result
        result.text = self.text
        if result.finish_reason is None:
            if not result.text.strip():
                raise ProviderError(
                    f"{label}'s stream ended before any answer (no finish reason); retry.", retryable=True
                )
            return self.cut(
                "incomplete", self.broken or ProviderError(f"{label}'s stream ended mid-answer", retryable=True)
            )
        if result.finish_reason == "length" and not result.text.strip():
            raise ProviderError(
                f"{label} spent the whole output budget ({result.tokens_out} tokens) before answering"
                + (f", {result.reasoning_tokens} of them reasoning" if result.reasoning_tokens else "")
                + "; ask for less, or lower thinking_mode."
            )
        return result

    def cut(self, reason: str, fault: ProviderError | None = None) -> ChatResult:
        """What streamed so far, marked as cut (`deadline` or `incomplete`) at the end of its text."""
        self.take_reasoning()
        result = self.result
        result.text = f"{self.text.rstrip()}\n\n{CUT_NOTES[reason]}"
        result.finish_reason, result.fault = reason, fault
        return result


def _field(container: Any, key: str) -> int:
    value = container.get(key) if isinstance(container, dict) else getattr(container, key, None)
    return int(value or 0)


@dataclass(frozen=True)
class ProviderFile:
    """A file as the provider's files API lists it."""

    id: str
    filename: str
    bytes: int
    created_at: int


def extracted_text(raw: str) -> str:
    """The text of a files-API `content` answer: Moonshot wraps it in JSON ({"content": ...})."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(answer, dict) and isinstance(answer.get("content"), str):
        return answer["content"]
    return raw


class ProviderError(Exception):
    """Everything a provider call can fail with, mapped to one of the contract's error codes."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode = "provider_error",
        retryable: bool = False,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: ErrorCode = code
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s


class Provider(abc.ABC):
    """One model provider. Subclasses set the class attributes and implement `chat`."""

    name: ClassVar[str]
    label: ClassVar[str]
    # The variable a user sets to enable this provider, named in `provider_unavailable`.
    enable_hint: ClassVar[str]
    # The files API's `purpose` for files whose text the model should read; "" = no files API.
    file_purpose: ClassVar[str] = ""
    # The model catalogue's knowledge (tools_app/providers/catalogue.py): facts per family,
    # which listed model an alias prefers (full-match patterns, best first), the lineup
    # that stands in while the live list cannot be read, and retired ids with their successor.
    families: ClassVar[tuple[Family, ...]] = ()
    preference: ClassVar[tuple[str, ...]] = ()
    known_models: ClassVar[tuple[str, ...]] = ()
    retired: ClassVar[dict[str, str]] = {}
    # Model ids that belong to this provider even when it does not list them (for advice).
    owns: ClassVar[str] = r"(?!)"

    @property
    @abc.abstractmethod
    def configured(self) -> bool: ...

    @property
    @abc.abstractmethod
    def timeout_s(self) -> float:
        """How long the provider may say nothing (connect, first byte, between two chunks)."""

    @property
    def region_hint(self) -> str:
        """Where a rejected key usually comes from (the other region's endpoint), said on a 401."""
        return ""

    @property
    def default_model_setting(self) -> str:
        """The model an operator chose for this provider's alias ("" = by preference)."""
        return ""

    @cached_property
    def catalogue(self) -> ModelCatalogue:
        from tools_app.providers.catalogue import ModelCatalogue

        return ModelCatalogue(self)

    def models(self) -> list[ModelSpec]:
        """The catalogue as last read (no I/O); `await self.catalogue.current()` reads it when due."""
        return self.catalogue.models()

    @abc.abstractmethod
    async def list_model_ids(self) -> list[str]:
        """The ids the provider's `GET /models` lists now; raise ProviderError when it cannot be read."""

    def thinking_controls(self, spec: ModelSpec, mode: ThinkingMode | None) -> dict[str, Any]:
        """The body fields that steer a thinking model's reasoning for `mode` (none: its default)."""
        return {}

    @abc.abstractmethod
    async def chat(
        self,
        *,
        spec: ModelSpec,
        messages: list[ChatMessage],
        temperature: float | None,
        max_tokens: int | None,
        reply: ReplyCollector,
        thinking_mode: ThinkingMode | None = None,
        response_format: dict[str, Any] | None = None,
        web_search: bool = False,
    ) -> ChatResult:
        """Run one chat completion into `reply` (answer and reasoning deltas); raise ProviderError on failure.

        The provider's timeout measures silence only: a reply that keeps streaming runs as
        long as the caller lets it (the caller keeps `reply` to return what streamed if its
        own deadline cuts the call). `response_format` is passed through as the APIs define
        it, e.g. {"type": "json_object"}. `web_search` (only for models whose spec has
        `web_search`) turns on the built-in search.
        """

    def request_body(
        self,
        spec: ModelSpec,
        messages: list[Any],
        temperature: float | None,
        max_tokens: int | None,
        *,
        thinking_mode: ThinkingMode | None = None,
        response_format: dict[str, Any] | None = None,
        stream: bool = True,
    ) -> dict[str, Any]:
        """The chat-completions body both APIs take. A temperature the model refuses is never sent."""
        body: dict[str, Any] = {"model": spec.name, "messages": messages, "stream": stream}
        if temperature is not None and spec.fixed_temperature is None:
            body["temperature"] = temperature
        body["max_tokens"] = max_tokens if max_tokens is not None else spec.output_budget()
        if response_format is not None:
            body["response_format"] = response_format
        if spec.thinking:
            body.update(self.thinking_controls(spec, thinking_mode))
        return body

    # --- files API (providers without one keep these defaults) --------------------------------

    @property
    def max_file_bytes(self) -> int:
        """The largest file the files API takes; 0 when the provider has no files API."""
        return 0

    async def upload_file(self, *, path: Path, name: str) -> str:
        """Upload a file for text extraction (streamed from `path`); return the provider's file id."""
        raise self.no_files_api()

    async def file_content(self, file_id: str) -> str:
        """The text the provider extracted from an uploaded file."""
        raise self.no_files_api()

    async def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file (a file the provider no longer has is a ProviderError with status 404)."""
        raise self.no_files_api()

    async def list_files(self) -> list[ProviderFile]:
        """Every file uploaded with this server's key, all pages."""
        raise self.no_files_api()

    def no_files_api(self) -> ProviderError:
        return ProviderError(f"{self.label} has no files API on this server.")

    def timed_out(self, timeout_s: float | None = None) -> ProviderError:
        seconds = self.timeout_s if timeout_s is None else timeout_s
        return ProviderError(f"{self.label} said nothing for {seconds:g}s.", code="timeout", retryable=True)

    def unavailable(self) -> ProviderError:
        return ProviderError(
            f"{self.label} is not configured on this server: set {self.enable_hint}.",
            code="provider_unavailable",
        )

    def error_from_status(
        self, status: int, detail: str, *, code: str = "", model: str = "", headers: Any = None
    ) -> ProviderError:
        """Turn an HTTP error into one that says what to do: which models exist, which endpoint, when to retry."""
        if status == 401:
            hint = f" {self.region_hint}" if self.region_hint else ""
            return ProviderError(f"{self.label} rejected the API key (401): {detail}.{hint}", status=status)
        if status == 403:
            return ProviderError(f"{self.label} refused this request (403): {detail}", status=status)
        if model and self.model_refused(status, code):
            self.catalogue.stale()  # it may have rotated since the list was read
            return ProviderError(
                f"{self.label} does not serve {model} for this key ({status}: {detail}). "
                + self.catalogue.describe(model),
                code="invalid_arguments",
                status=status,
            )
        if status == 429:
            return ProviderError(
                f"{self.label} is rate limiting this server (429): {detail}",
                retryable=True,
                status=status,
                retry_after_s=_retry_after(headers),
            )
        return ProviderError(f"{self.label} returned HTTP {status}: {detail}", retryable=status >= 500, status=status)

    def model_refused(self, status: int, code: str) -> bool:
        """Whether this error says the model does not exist or is not for this key."""
        return False


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
