"""Providers that speak the OpenAI chat-completions API, through the official openai SDK."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import openai
from django.conf import settings

from tools_app.providers.base import (
    ChatMessage,
    ChatResult,
    DeltaCallback,
    Provider,
    ProviderError,
    ProviderFile,
    ReplyCollector,
    extracted_text,
)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def provider_error_from_status(label: str, status: int, detail: str, headers: Any = None) -> ProviderError:
    """Map an HTTP status from any provider SDK to our error, the same way for every provider."""
    if status in (401, 403):
        return ProviderError(f"{label} rejected the API key ({status}): {detail}", status=status)
    if status == 429:
        return ProviderError(
            f"{label} is rate limiting this server (429): {detail}",
            retryable=True,
            status=status,
            retry_after_s=_retry_after(headers),
        )
    return ProviderError(f"{label} returned HTTP {status}: {detail}", retryable=status >= 500, status=status)


class OpenAICompatibleProvider(Provider):
    """Base for Kimi and local endpoints: an `AsyncOpenAI` client with the SDK's own retries."""

    base_url: str
    api_key: str

    @property
    def client(self) -> openai.AsyncOpenAI:
        """This event loop's client: its connection pool belongs to the loop that opened it."""
        loop = asyncio.get_running_loop()
        clients = self.__dict__.setdefault("_clients", weakref.WeakKeyDictionary())
        client = clients.get(loop)
        if client is None:
            client = clients[loop] = openai.AsyncOpenAI(
                api_key=self.api_key,
                base_url=self.base_url,
                timeout=self.timeout_s,
                max_retries=settings.EXAI_PROVIDER_MAX_RETRIES,
            )
        return client

    # The provider's built-in web search tool, for models whose spec has `web_search`.
    search_tool: ClassVar[dict[str, Any] | None] = None

    def extra_body(self, model: str) -> dict[str, Any] | None:
        return None

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
        reply = ReplyCollector(model, on_delta)
        # With a built-in search (Moonshot's `$web_search`), the model first asks for the
        # search as a tool call; echoing the call back runs it on the provider's side, and
        # the next round answers. A few rounds at most.
        tools = [self.search_tool] if web_search and self.search_tool else None
        for _ in range(_MAX_SEARCH_ROUNDS):
            body = self.request_body(model, messages, temperature, max_tokens, response_format)
            if tools:
                body["tools"] = tools
            if extra := self.extra_body(model):
                body.update(extra)
            calls: dict[int, dict[str, Any]] = {}
            # The SDK's timeout bounds each read; this bounds the whole streamed call.
            async with self._translated_errors(self.timeout_s):
                # The SDK's low-level `post` keeps its retries, auth, errors and SSE decoding but
                # skips walking the messages to transform request params and building a pydantic
                # model per chunk, which together cost more CPU than the rest of a tool call.
                stream = await self.client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=object,
                    stream=True,
                    stream_cls=openai.AsyncStream[object],
                )
                async with stream:
                    async for chunk in stream:
                        if delta := _absorb(chunk, reply.result, calls):
                            await reply.add(delta)
            if reply.result.finish_reason != "tool_calls" or not calls:
                break
            asked = [calls[index] for index in sorted(calls)]
            echoed: list[Any] = [
                {"role": "assistant", "content": "", "tool_calls": asked},
                *(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "name": call["function"]["name"],
                        "content": call["function"]["arguments"],
                    }
                    for call in asked
                ),
            ]
            messages = [*messages, *echoed]
        return reply.finish()

    async def chat_with_tools(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        tool_choice: Any,
        temperature: float | None,
    ) -> dict[str, Any]:
        """One function-calling turn, not streamed: the assistant message (content and/or tool_calls)."""
        body = self.request_body(model, messages, temperature, None)  # type: ignore[arg-type]  # any roles
        body.update(stream=False, tools=tools)
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        async with self._translated_errors(self.timeout_s):
            answer: Any = await self.client.post("/chat/completions", body=body, cast_to=object)
        choice = (answer.get("choices") or [{}])[0]
        usage = answer.get("usage") or {}
        return {
            "model": answer.get("model", model),
            "message": choice.get("message") or {},
            "finish_reason": choice.get("finish_reason"),
            "tokens_in": usage.get("prompt_tokens", 0),
            "tokens_out": usage.get("completion_tokens", 0),
        }

    @asynccontextmanager
    async def _translated_errors(self, timeout_s: float) -> AsyncIterator[None]:
        """Bound the body by `timeout_s` and turn every SDK failure into one ProviderError."""
        try:
            async with asyncio.timeout(timeout_s):
                yield
        except (TimeoutError, openai.APITimeoutError):
            raise self.timed_out(timeout_s) from None
        except openai.APIStatusError as exc:
            raise provider_error_from_status(self.label, exc.status_code, _detail(exc), exc.response.headers) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"cannot reach {self.label} at {self.base_url}: {exc}", retryable=True) from None
        except openai.OpenAIError as exc:
            raise ProviderError(f"{self.label} failed: {exc}") from None

    # --- files API ---------------------------------------------------------------------------

    async def upload_file(self, *, path: Path, name: str) -> str:
        if not self.max_file_bytes:
            raise self.no_files_api()
        timeout = settings.EXAI_FILE_TIMEOUT_S
        # A file object, never bytes: the SDK streams it, and its DEBUG log shows the object, not the content.
        with path.open("rb") as handle:
            async with self._translated_errors(timeout):
                uploaded = await self.client.files.create(
                    file=(name, handle),
                    purpose=self.file_purpose,  # type: ignore[arg-type]  # Moonshot's own purpose
                    timeout=timeout,
                )
        return uploaded.id

    async def file_content(self, file_id: str) -> str:
        if not self.max_file_bytes:
            raise self.no_files_api()
        async with self._translated_errors(settings.EXAI_FILE_TIMEOUT_S):
            response = await self.client.files.content(file_id, timeout=settings.EXAI_FILE_TIMEOUT_S)
        return extracted_text(response.text)

    async def delete_file(self, file_id: str) -> None:
        if not self.max_file_bytes:
            raise self.no_files_api()
        async with self._translated_errors(settings.EXAI_FILE_TIMEOUT_S):
            await self.client.files.delete(file_id, timeout=settings.EXAI_FILE_TIMEOUT_S)

    async def list_files(self) -> list[ProviderFile]:
        if not self.max_file_bytes:
            raise self.no_files_api()
        async with self._translated_errors(settings.EXAI_FILE_TIMEOUT_S):
            return [
                ProviderFile(item.id, item.filename, item.bytes, item.created_at)
                async for item in self.client.files.list(timeout=settings.EXAI_FILE_TIMEOUT_S)
            ]


# Rounds of a call with Moonshot's built-in search: the search request(s), then the answer.
_MAX_SEARCH_ROUNDS = 3


def _absorb(chunk: Any, result: ChatResult, calls: dict[int, dict[str, Any]]) -> str | None:
    """Take usage, finish reason and tool-call pieces from one streamed chunk (a plain dict); return its text."""
    if not isinstance(chunk, dict):
        return None
    choices = chunk.get("choices") or []
    choice = choices[0] if choices else {}
    # Moonshot reports usage on the last choice rather than on the chunk.
    usage = chunk.get("usage") or choice.get("usage")
    if usage:
        # Added up: a call with a search round streams twice, each with its usage.
        result.tokens_in += int(usage.get("prompt_tokens") or 0)
        result.tokens_out += int(usage.get("completion_tokens") or 0)
    if choice.get("finish_reason"):
        result.finish_reason = choice["finish_reason"]
    delta = choice.get("delta") or {}
    for piece in delta.get("tool_calls") or []:
        call = calls.setdefault(
            piece.get("index", 0), {"id": "", "type": "", "function": {"name": "", "arguments": ""}}
        )
        call["id"] = piece.get("id") or call["id"]
        call["type"] = piece.get("type") or call["type"]
        function = piece.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""
    return delta.get("content") or None


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message
