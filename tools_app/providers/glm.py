"""Z.ai GLM through the zhipuai SDK.

The SDK is synchronous, so a call streams in a worker thread of its own pool and
hands deltas to the event loop. Cancelling the call closes the HTTP response under
the thread, which aborts the provider request instead of letting it run on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
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

from tools_app.providers.base import Provider, ProviderError, extracted_text
from tools_app.providers.catalogue import Family, family
from tools_app.providers.openai_compatible import unreadable
from tools_app.providers.replies import ChatResult, ReplyCollector
from tools_app.providers.types import ChatMessage, ModelSpec, ProviderFile, ThinkingMode

_DONE = object()
T = TypeVar("T")


def _glm(pattern: str, context: int, output: int, description: str, *, vision: bool = False) -> Family:
    """A hybrid reasoning family (GLM-4.5 onwards): thinking on by default, switchable per request."""
    return family(pattern, context, output, description, vision=vision, thinking=True, web_search=not vision)


class GlmProvider(Provider):
    name = "glm"
    label = "Z.ai GLM"
    enable_hint = "GLM_API_KEY (and GLM_BASE_URL for a non-default endpoint)"
    file_purpose = "file"
    families = (
        _glm(r"glm-\d+(\.\d+)?v.*", 65_536, 16_384, "GLM with image input", vision=True),
        _glm(r"glm-5.*", 200_000, 128_000, "GLM-5 line"),
        _glm(r"glm-4\.[67].*", 200_000, 128_000, "GLM-4.6/4.7"),
        _glm(r"glm-4\.5.*", 131_072, 98_304, "GLM-4.5 line"),
        family(r"glm-4.*", 128_000, 16_384, "GLM-4, before hybrid reasoning"),
    )
    preference = (r"glm-5\.2", r"glm-5\.1", r"glm-5", r"glm-4\.7", r"glm-4\.6", r"glm-4\.5", r"glm-\d.*")
    known_models = ("glm-5.1", "glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5v")
    owns = r"glm-.*"

    @property
    def configured(self) -> bool:
        return bool(settings.GLM_API_KEY)

    @property
    def timeout_s(self) -> float:
        return settings.EXAI_GLM_TIMEOUT_S

    @property
    def max_file_bytes(self) -> int:
        return settings.EXAI_GLM_MAX_FILE_BYTES

    @property
    def default_model_setting(self) -> str:
        return settings.EXAI_GLM_DEFAULT_MODEL

    @property
    def region_hint(self) -> str:
        if "bigmodel.cn" in settings.GLM_BASE_URL:
            return "A key from z.ai (international) works only at GLM_BASE_URL=https://api.z.ai/api/paas/v4/."
        return (
            "A key from open.bigmodel.cn (mainland) works only at GLM_BASE_URL=https://open.bigmodel.cn/api/paas/v4/."
        )

    def thinking_controls(self, spec: ModelSpec, mode: ThinkingMode | None) -> dict[str, Any]:
        return {"thinking": {"type": "disabled" if mode == "minimal" else "enabled"}}

    def model_refused(self, status: int, code: str) -> bool:
        # 1211/1214: no such model; 1220: not for this key's plan.
        return status == 400 and code in ("1211", "1214", "1220")

    @cached_property
    def client(self) -> zhipuai.ZhipuAI:
        return zhipuai.ZhipuAI(
            api_key=settings.GLM_API_KEY,
            base_url=settings.GLM_BASE_URL,
            # Per read (httpx): connect, first byte and each gap between two chunks.
            timeout=self.timeout_s,
            max_retries=settings.EXAI_PROVIDER_MAX_RETRIES,
        )

    @cached_property
    def executor(self) -> ThreadPoolExecutor:
        # Sized above the provider's slot limit so a throttled call never waits for a thread.
        workers = max(8, settings.EXAI_GLM_MAX_CONCURRENCY * 2)
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="glm")

    async def list_model_ids(self) -> list[str]:
        def read() -> Any:
            return self.client.get("/models", cast_type=object)

        answer = await self._in_thread(read, self.timeout_s)
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
        loop = asyncio.get_running_loop()
        handoff = _Handoff(loop)
        stop = threading.Event()
        state: dict[str, Any] = {}
        kwargs = self.request_body(
            spec, messages, temperature, max_tokens, thinking_mode=thinking_mode, response_format=response_format
        )
        if web_search:  # Z.ai searches on its side and answers with what it found
            kwargs["tools"] = [{"type": "web_search", "web_search": {"enable": True, "search_result": True}}]

        put = handoff.put

        def work() -> None:
            try:
                stream = self.client.chat.completions.create(**kwargs)
                state["stream"] = stream
                if stop.is_set():
                    _abort(stream.response)
                    return
                unreadable(self.label, stream.response.headers.get("content-type", ""))
                for chunk in stream:
                    if stop.is_set():
                        break
                    put(("chunk", chunk))
                put(_DONE)
            except BaseException as exc:  # handed to the loop, which raises it
                put(("error", exc))

        future = loop.run_in_executor(self.executor, work)
        try:
            # Silence, not length: the clock restarts with every chunk.
            async with asyncio.timeout(self.timeout_s) as silence:
                while (item := await handoff.get()) is not _DONE:
                    silence.reschedule(loop.time() + self.timeout_s)
                    kind, payload = item
                    if kind == "error":
                        if isinstance(payload, httpx.TransportError):
                            # Broken mid-stream: the text so far is kept, marked as cut (finish below).
                            message = f"{self.label}'s connection broke mid-answer: {payload}"
                            reply.interrupted(ProviderError(message, retryable=True))
                            break
                        raise self._translate(payload, spec.name)
                    await self._absorb(payload, reply)
        except TimeoutError:
            reply.interrupted(self.timed_out())
        finally:
            if not future.done():
                stop.set()
                stream = state.get("stream")
                if stream is not None:
                    _abort(stream.response)
        return reply.finish(self.label)

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

        return await self._in_thread(search, self.timeout_s)

    # --- files API: the SDK is synchronous, so each operation runs in this provider's threads ---

    async def _in_thread(self, function: Callable[[], T], limit_s: float | None = None) -> T:
        timeout = settings.EXAI_FILE_TIMEOUT_S if limit_s is None else limit_s
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
    async def _absorb(chunk: Any, reply: ReplyCollector) -> None:
        if usage := getattr(chunk, "usage", None):
            reply.usage(usage)
        if not chunk.choices:
            return
        choice = chunk.choices[0]
        if choice.finish_reason:
            reply.result.finish_reason = choice.finish_reason
        if thought := getattr(choice.delta, "reasoning_content", None):
            await reply.think(thought)
        if text := choice.delta.content:
            await reply.add(text)

    def _translate(self, exc: BaseException, model: str = "") -> BaseException:
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, APITimeoutError):
            return self.timed_out()
        if isinstance(exc, APIStatusError):
            message, code = _error_body(exc.response)
            return self.error_from_status(
                exc.status_code, message, code=code, model=model, headers=exc.response.headers
            )
        if isinstance(exc, APIConnectionError):
            return ProviderError(f"cannot reach {self.label} at {settings.GLM_BASE_URL}: {exc}", retryable=True)
        if isinstance(exc, APIResponseError):
            return ProviderError(f"{self.label} returned an unusable response: {exc}", retryable=True)
        if isinstance(exc, ZhipuAIError):
            return ProviderError(f"{self.label} failed: {exc}")
        return exc


class _Handoff:
    """Items from the SDK's thread to the event loop, waking the loop once per batch, not per chunk.

    A stream's chunks can come faster than the loop takes them; each wake-up through
    `call_soon_threadsafe` costs a write to the loop's self-pipe, so the thread asks for
    one only when none is pending, and the loop takes everything that arrived meanwhile.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: collections.deque[Any] = collections.deque()
        self._ready = asyncio.Event()
        self._asked = threading.Event()  # a wake-up is on its way to the loop

    def put(self, item: Any) -> None:
        self._items.append(item)
        if not self._asked.is_set():
            self._asked.set()
            # A stream still ending in its thread after its loop closed: nobody waits for it.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> Any:
        while not self._items:
            # Cleared before looking again, so an item put after the look asks for a new wake-up.
            self._ready.clear()
            self._asked.clear()
            if self._items:
                break
            await self._ready.wait()
        return self._items.popleft()


def _error_body(response: Any) -> tuple[str, str]:
    """Z.ai's error message and code (`{"error": {"code": "1214", "message": ...}}`), or the raw text."""
    try:
        body = response.json()
    except Exception:
        return str(getattr(response, "text", ""))[:500], ""
    error = body.get("error", body) if isinstance(body, dict) else {}
    if not isinstance(error, dict):
        return str(body)[:500], ""
    return str(error.get("message") or body)[:500], str(error.get("code") or "")


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
