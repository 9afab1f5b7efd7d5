"""Z.ai GLM through the zhipuai SDK.

The SDK is synchronous, so a call streams in a worker thread of its own pool and
hands deltas to the event loop. Cancelling the call closes the HTTP response under
the thread, which aborts the provider request instead of letting it run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

import zhipuai
from django.conf import settings
from zhipuai.core import NOT_GIVEN
from zhipuai.core._errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    ZhipuAIError,
)

from tools_app.providers.base import (
    ChatMessage,
    ChatResult,
    DeltaCallback,
    ModelSpec,
    Provider,
    ProviderError,
    ProviderFile,
    ReplyCollector,
    extracted_text,
)
from tools_app.providers.openai_compatible import provider_error_from_status

_MODELS = [
    ModelSpec("glm-4.6", "glm", 200_000, 128_000, web_search=True, thinking=True, description="GLM 4.6 flagship"),
    ModelSpec("glm-4.5", "glm", 131_072, 98_304, web_search=True, thinking=True, description="GLM 4.5"),
    ModelSpec("glm-4.5-air", "glm", 131_072, 98_304, web_search=True, description="GLM 4.5 Air, cheaper"),
    ModelSpec("glm-4.5-flash", "glm", 131_072, 98_304, description="GLM 4.5 Flash, fastest"),
    ModelSpec("glm-4.5v", "glm", 65_536, 16_384, vision=True, description="GLM 4.5 with image input"),
]

_DONE = object()
T = TypeVar("T")


class GlmProvider(Provider):
    name = "glm"
    label = "Z.ai GLM"
    enable_hint = "GLM_API_KEY (and GLM_BASE_URL for a non-default endpoint)"
    file_purpose = "file"

    @property
    def configured(self) -> bool:
        return bool(settings.GLM_API_KEY)

    @property
    def timeout_s(self) -> float:
        return settings.EXAI_GLM_TIMEOUT_S

    def models(self) -> list[ModelSpec]:
        return _MODELS

    @property
    def max_file_bytes(self) -> int:
        return settings.EXAI_GLM_MAX_FILE_BYTES

    @cached_property
    def client(self) -> zhipuai.ZhipuAI:
        return zhipuai.ZhipuAI(
            api_key=settings.GLM_API_KEY,
            base_url=settings.GLM_BASE_URL,
            timeout=self.timeout_s,
            max_retries=settings.EXAI_PROVIDER_MAX_RETRIES,
        )

    @cached_property
    def executor(self) -> ThreadPoolExecutor:
        # Sized above the provider's slot limit so a throttled call never waits for a thread.
        workers = max(8, settings.EXAI_GLM_MAX_CONCURRENCY * 2)
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="glm")

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
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        state: dict[str, Any] = {}
        reply = ReplyCollector(model, on_delta)
        kwargs = self.request_body(model, messages, temperature, max_tokens, response_format)
        if web_search:  # Z.ai searches on its side and answers with what it found
            kwargs["tools"] = [{"type": "web_search", "web_search": {"enable": True, "search_result": True}}]

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                stream = self.client.chat.completions.create(**kwargs)
                state["stream"] = stream
                if stop.is_set():
                    _abort(stream.response)
                    return
                for chunk in stream:
                    if stop.is_set():
                        break
                    put(("chunk", chunk))
                put(_DONE)
            except BaseException as exc:  # handed to the loop, which raises it
                put(("error", exc))

        future = loop.run_in_executor(self.executor, work)
        try:
            async with asyncio.timeout(self.timeout_s):
                while (item := await queue.get()) is not _DONE:
                    kind, payload = item
                    if kind == "error":
                        raise self._translate(payload)
                    self._absorb(payload, reply.result)
                    if payload.choices and (delta := payload.choices[0].delta.content):
                        await reply.add(delta)
        except TimeoutError:
            raise self.timed_out() from None
        finally:
            if not future.done():
                stop.set()
                stream = state.get("stream")
                if stream is not None:
                    _abort(stream.response)
        return reply.finish()

    async def web_search(
        self, *, query: str, engine: str, count: int, domain: str | None, recency: str | None
    ) -> list[dict[str, Any]]:
        """Z.ai's search endpoint: the results (title, link, content, media, publish_date)."""

        def search() -> list[dict[str, Any]]:
            answer = self.client.web_search.web_search(
                search_query=query,
                search_engine=engine,
                count=count,
                **({"search_domain_filter": domain} if domain else {}),
                **({"search_recency_filter": recency} if recency else {}),
                timeout=self.timeout_s,
            )
            results = answer.search_result or []
            results = results if isinstance(results, list) else [results]
            return [item if isinstance(item, dict) else item.model_dump() for item in results]

        return await self._in_thread(search)

    # --- files API: the SDK is synchronous, so each operation runs in this provider's threads ---

    async def _in_thread(self, function: Callable[[], T]) -> T:
        timeout = settings.EXAI_FILE_TIMEOUT_S
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.get_running_loop().run_in_executor(self.executor, function)
        except TimeoutError:
            raise self.timed_out(timeout) from None
        except (ZhipuAIError, APIResponseError) as exc:
            raise self._translate(exc) from None

    async def upload_file(self, *, path: Path, name: str) -> str:
        def upload() -> str:
            # A file object, never bytes: streamed, and never rendered into a log record.
            with path.open("rb") as handle:
                created = self.client.files.create(
                    file=(name, handle),
                    purpose=self.file_purpose,  # type: ignore[arg-type]  # Z.ai's own purpose
                    timeout=settings.EXAI_FILE_TIMEOUT_S,
                )
            return str(created.id)

        return await self._in_thread(upload)

    async def file_content(self, file_id: str) -> str:
        content = partial(self.client.files.content, file_id, timeout=settings.EXAI_FILE_TIMEOUT_S)
        return extracted_text((await self._in_thread(content)).content.decode("utf-8", "replace"))

    async def delete_file(self, file_id: str) -> None:
        await self._in_thread(partial(self.client.files.delete, file_id=file_id, timeout=settings.EXAI_FILE_TIMEOUT_S))

    async def list_files(self) -> list[ProviderFile]:
        def list_all() -> list[ProviderFile]:
            files: list[ProviderFile] = []
            after: Any = NOT_GIVEN
            while True:
                page = self.client.files.list(after=after, limit=100, timeout=settings.EXAI_FILE_TIMEOUT_S)
                files += [ProviderFile(f.id, f.filename or "", f.bytes or 0, f.created_at or 0) for f in page.data]
                if not page.has_more or not page.data:
                    return files
                after = page.data[-1].id

        return await self._in_thread(list_all)

    @staticmethod
    def _absorb(chunk: Any, result: ChatResult) -> None:
        usage = getattr(chunk, "usage", None)
        if usage:
            result.tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
            result.tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        if chunk.choices and chunk.choices[0].finish_reason:
            result.finish_reason = chunk.choices[0].finish_reason

    def _translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, APITimeoutError):
            return self.timed_out()
        if isinstance(exc, APIStatusError):
            return provider_error_from_status(self.label, exc.status_code, str(exc), exc.response.headers)
        if isinstance(exc, APIConnectionError):
            return ProviderError(f"cannot reach {self.label} at {settings.GLM_BASE_URL}: {exc}", retryable=True)
        if isinstance(exc, APIResponseError):
            return ProviderError(f"{self.label} returned an unusable response: {exc}", retryable=True)
        if isinstance(exc, ZhipuAIError):
            return ProviderError(f"{self.label} failed: {exc}")
        return exc


def _abort(response: Any) -> None:
    """Shut the response's socket so the worker thread's blocked read fails at once.

    Closing the httpx response from another thread does not interrupt a blocking
    recv(); shutting down the socket does, and the provider sees the disconnect.
    """
    network_stream = response.extensions.get("network_stream")
    sock = network_stream.get_extra_info("socket") if network_stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()
