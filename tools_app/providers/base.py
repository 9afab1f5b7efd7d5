"""The one base class every provider implements, and the one error they raise."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
    ) -> ChatResult:
        """Run one chat completion, streaming deltas to `on_delta`; raise ProviderError on failure.

        `response_format` is passed through as the APIs define it, e.g. {"type": "json_object"}.
        """

    def timed_out(self) -> ProviderError:
        return ProviderError(f"{self.label} did not answer within {self.timeout_s:g}s.", code="timeout", retryable=True)

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
