"""The one base class every provider implements, and the one error they raise."""

from __future__ import annotations

import abc
import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from exai_site.redaction import scrub
from tools_app.providers.catalogue import Family, ModelCatalogue
from tools_app.providers.types import ChatMessage, ModelSpec, ProviderFile, ThinkingMode

if TYPE_CHECKING:  # replies raises ProviderError: base reads its types only when type-checked
    from tools_app.providers.replies import ChatResult, ReplyCollector

ErrorCode = Literal["provider_error", "provider_unavailable", "timeout", "invalid_arguments"]


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
        # Provider messages may quote the endpoint's URL, and with it credentials (LOCAL_BASE_URL).
        message = scrub(message)
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
