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

from tools_app.providers.base import Provider, ProviderError, extracted_text
from tools_app.providers.replies import ChatResult, ReplyCollector
from tools_app.providers.types import ChatMessage, ModelSpec, ProviderFile, ThinkingMode


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
                # Per read, not per request: connect, first byte and each gap between two chunks.
                timeout=self.timeout_s,
                max_retries=settings.EXAI_PROVIDER_MAX_RETRIES,
                # The SDK's defaults, without its wrapper's __del__, which closes a forgotten client's
                # connections on whatever loop runs then: not theirs, once their loop has gone.
                http_client=openai.DefaultAsyncHttpxClient(),
            )
        return client

    # The provider's built-in web search tool, for models whose spec has `web_search`.
    search_tool: ClassVar[dict[str, Any] | None] = None

    async def list_model_ids(self) -> list[str]:
        async with self._translated_errors(timeout_s=self.timeout_s):
            answer: Any = await self.client.get("/models", cast_to=object)
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise ProviderError(f"{self.label}'s model list is unreadable: {str(answer)[:200]}", retryable=True)
        return [str(item["id"]) for item in answer["data"] if isinstance(item, dict) and item.get("id")]

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
        # With a built-in search (Moonshot's `$web_search`), the model first asks for the
        # search as a tool call; echoing the call back runs it on the provider's side, and
        # the next round answers. A few rounds at most.
        tools = [self.search_tool] if web_search and self.search_tool else None
        body = self.request_body(
            spec, messages, temperature, max_tokens, thinking_mode=thinking_mode, response_format=response_format
        )
        for _ in range(_MAX_SEARCH_ROUNDS):
            if tools:
                body["tools"] = tools
            calls: dict[int, dict[str, Any]] = {}
            reply.result.finish_reason = None
            async with self._translated_errors(model=spec.name):
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
                    unreadable(self.label, stream.response.headers.get("content-type", ""))
                    await self._read_stream(stream, reply, calls)
            if reply.result.finish_reason != "tool_calls" or not calls:
                break
            asked = [calls[index] for index in sorted(calls)]
            said: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": asked}
            if thought := reply.take_reasoning():
                # A thinking model wants its reasoning back with its tool call (Moonshot: else 400).
                said["reasoning_content"] = thought
            echoed: list[Any] = [
                said,
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
            body["messages"] = [*body["messages"], *echoed]
        return reply.finish(self.label)

    async def _read_stream(
        self, stream: openai.AsyncStream[object], reply: ReplyCollector, calls: dict[int, dict[str, Any]]
    ) -> None:
        """Hand each chunk to `reply`; silence longer than the provider's timeout fails the call.

        Silence or a broken connection after some text ends the reading like a stream without
        a finish reason: `reply.finish` then keeps the text, marked as cut.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s) as silence:
                async for chunk in stream:
                    silence.reschedule(loop.time() + self.timeout_s)
                    await _absorb(chunk, reply, calls)
        except (TimeoutError, openai.APITimeoutError):  # ours, or the SDK's read timeout: the same silence
            reply.interrupted(self.timed_out())
        except openai.APIConnectionError as exc:  # the SDK's word for a broken transport
            reply.interrupted(ProviderError(f"{self.label}'s connection broke mid-answer: {exc}", retryable=True))

    async def chat_with_tools(
        self,
        *,
        spec: ModelSpec,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        tool_choice: Any,
        temperature: float | None,
    ) -> dict[str, Any]:
        """One function-calling turn, not streamed: the assistant message (content, tool_calls, reasoning)."""
        body = self.request_body(spec, messages, temperature, None, stream=False)
        body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        async with self._translated_errors(model=spec.name):
            answer: Any = await self.client.post("/chat/completions", body=body, cast_to=object)
        if not isinstance(answer, dict) or not answer.get("choices"):
            raise ProviderError(f"{self.label} answered with an unreadable body: {str(answer)[:200]}", retryable=True)
        choice = answer["choices"][0]
        usage = answer.get("usage") or {}
        return {
            "model": answer.get("model", spec.name),
            "message": choice.get("message") or {},
            "finish_reason": choice.get("finish_reason"),
            "tokens_in": usage.get("prompt_tokens", 0),
            "tokens_out": usage.get("completion_tokens", 0),
        }

    @asynccontextmanager
    async def _translated_errors(self, *, timeout_s: float | None = None, model: str = "") -> AsyncIterator[None]:
        """Turn every SDK failure into one ProviderError; `timeout_s` bounds the whole body."""
        try:
            async with asyncio.timeout(timeout_s):
                yield
        except (TimeoutError, openai.APITimeoutError):
            raise self.timed_out(timeout_s) from None
        except openai.APIStatusError as exc:
            code = str(exc.body.get("code") or "") if isinstance(exc.body, dict) else ""
            raise self.error_from_status(
                exc.status_code, _detail(exc), code=code, model=model, headers=exc.response.headers
            ) from None
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
            async with self._translated_errors(timeout_s=timeout):
                uploaded = await self.client.files.create(
                    file=(name, handle),
                    purpose=self.file_purpose,  # type: ignore[arg-type]  # Moonshot's own purpose
                    timeout=timeout,
                )
        return uploaded.id

    async def file_content(self, file_id: str) -> str:
        if not self.max_file_bytes:
            raise self.no_files_api()
        async with self._translated_errors(timeout_s=settings.EXAI_FILE_TIMEOUT_S):
            response = await self.client.files.content(file_id, timeout=settings.EXAI_FILE_TIMEOUT_S)
        return extracted_text(response.text)

    async def delete_file(self, file_id: str) -> None:
        if not self.max_file_bytes:
            raise self.no_files_api()
        async with self._translated_errors(timeout_s=settings.EXAI_FILE_TIMEOUT_S):
            await self.client.files.delete(file_id, timeout=settings.EXAI_FILE_TIMEOUT_S)

    async def list_files(self) -> list[ProviderFile]:
        if not self.max_file_bytes:
            raise self.no_files_api()
        async with self._translated_errors(timeout_s=settings.EXAI_FILE_TIMEOUT_S):
            return [
                ProviderFile(item.id, item.filename, item.bytes, item.created_at)
                async for item in self.client.files.list(timeout=settings.EXAI_FILE_TIMEOUT_S)
            ]


# Rounds of a call with Moonshot's built-in search: the search request(s), then the answer.
_MAX_SEARCH_ROUNDS = 3


async def _absorb(chunk: Any, reply: ReplyCollector, calls: dict[int, dict[str, Any]]) -> None:
    """Take usage, finish reason, tool-call pieces, reasoning and text from one streamed chunk (a plain dict)."""
    if not isinstance(chunk, dict):
        return
    choices = chunk.get("choices") or []
    choice = choices[0] if choices else {}
    # Moonshot reports usage on the last choice rather than on the chunk.
    if usage := chunk.get("usage") or choice.get("usage"):
        # Added up: a call with a search round streams twice, each with its usage.
        reply.usage(usage, add=True)
    if choice.get("finish_reason"):
        reply.result.finish_reason = choice["finish_reason"]
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
    if thought := delta.get("reasoning_content"):
        await reply.think(thought)
    if text := delta.get("content"):
        await reply.add(text)


def unreadable(label: str, content_type: str) -> None:
    """Refuse a 200 whose body is neither an event stream nor JSON (a proxy's page, say)."""
    if content_type and not content_type.startswith(("text/event-stream", "application/json")):
        raise ProviderError(
            f"{label} answered with {content_type.split(';')[0]} instead of an event stream; retry.",
            retryable=True,
        )


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message
