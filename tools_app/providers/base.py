"""The one base class every provider implements, and the one error they raise."""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypedDict

ErrorCode = Literal["provider_error", "provider_unavailable", "timeout"]
DeltaCallback = Callable[[str], Awaitable[None]]


class ChatMessage(TypedDict):
    role: str
    content: str | list[dict[str, Any]]


@dataclass(frozen=True)
class ModelSpec:
    """What one model can do; the registry answers `listmodels` and `auto` from these."""

    name: str
    provider: str
    context_window: int
    max_output_tokens: int
    vision: bool = False
    web_search: bool = False
    thinking: bool = False
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "vision": self.vision,
            "web_search": self.web_search,
            "thinking": self.thinking,
            "description": self.description,
        }


@dataclass
class ChatResult:
    text: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    finish_reason: str | None = None
    ttft_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ReplyCollector:
    """Gathers a streamed reply (its text, its time to first token) and hands each delta on."""

    def __init__(self, model: str, on_delta: DeltaCallback | None) -> None:
        self.result = ChatResult(text="", model=model)
        self._on_delta = on_delta
        self._parts: list[str] = []
        self._started = time.perf_counter()

    async def add(self, delta: str) -> None:
        if self.result.ttft_ms is None:
            self.result.ttft_ms = (time.perf_counter() - self._started) * 1000
        self._parts.append(delta)
        if self._on_delta is not None:
            await self._on_delta(delta)

    def finish(self) -> ChatResult:
        self.result.text = "".join(self._parts)
        return self.result


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

    @property
    @abc.abstractmethod
    def configured(self) -> bool: ...

    @property
    @abc.abstractmethod
    def timeout_s(self) -> float: ...

    @abc.abstractmethod
    def models(self) -> list[ModelSpec]: ...

    @property
    def default_model(self) -> str:
        return self.models()[0].name

    @abc.abstractmethod
    async def chat(
        self,
        *,
        model: str,
        messages: list[ChatMessage],
        temperature: float | None,
        max_tokens: int | None,
        on_delta: DeltaCallback | None,
        response_format: dict[str, Any] | None = None,
        web_search: bool = False,
    ) -> ChatResult:
        """Run one chat completion, streaming deltas to `on_delta`; raise ProviderError on failure.

        `response_format` is passed through as the APIs define it, e.g. {"type": "json_object"}.
        `web_search` (only for models whose spec has `web_search`) turns on the built-in search.
        """

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
        return ProviderError(f"{self.label} did not answer within {seconds:g}s.", code="timeout", retryable=True)

    @staticmethod
    def request_body(
        model: str,
        messages: list[ChatMessage],
        temperature: float | None,
        max_tokens: int | None,
        response_format: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The chat-completions body both APIs take, always streamed."""
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if response_format is not None:
            body["response_format"] = response_format
        return body

    def unavailable(self) -> ProviderError:
        return ProviderError(
            f"{self.label} is not configured on this server: set {self.enable_hint}.",
            code="provider_unavailable",
        )
