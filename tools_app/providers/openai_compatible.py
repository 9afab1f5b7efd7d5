"""Providers that speak the OpenAI chat-completions API, through the official openai SDK."""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from typing import Any

import openai

from tools_app.providers.base import ChatMessage, ChatResult, DeltaCallback, Provider, ProviderError


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

    @cached_property
    def client(self) -> openai.AsyncOpenAI:
        from django.conf import settings

        return openai.AsyncOpenAI(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=settings.EXAI_PROVIDER_MAX_RETRIES,
        )

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
    ) -> ChatResult:
        started = time.perf_counter()
        parts: list[str] = []
        result = ChatResult(text="", model=model)
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if extra := self.extra_body(model):
            kwargs["extra_body"] = extra
        try:
            # The SDK's timeout bounds each read; this bounds the whole streamed call.
            async with asyncio.timeout(self.timeout_s):
                stream = await self.client.chat.completions.create(**kwargs)
                async with stream:
                    async for chunk in stream:
                        usage = getattr(chunk, "usage", None)
                        if usage is None and chunk.choices:
                            # Moonshot reports usage on the last choice rather than the chunk.
                            usage = getattr(chunk.choices[0], "usage", None)
                        if usage:
                            result.tokens_in = _usage_field(usage, "prompt_tokens")
                            result.tokens_out = _usage_field(usage, "completion_tokens")
                        if not chunk.choices:
                            continue
                        choice = chunk.choices[0]
                        if choice.finish_reason:
                            result.finish_reason = choice.finish_reason
                        delta = choice.delta.content if choice.delta else None
                        if delta:
                            if result.ttft_ms is None:
                                result.ttft_ms = (time.perf_counter() - started) * 1000
                            parts.append(delta)
                            if on_delta is not None:
                                await on_delta(delta)
        except TimeoutError:
            raise ProviderError(
                f"{self.label} did not answer within {self.timeout_s:g}s.", code="timeout", retryable=True
            ) from None
        except openai.APITimeoutError:
            raise ProviderError(
                f"{self.label} did not answer within {self.timeout_s:g}s.", code="timeout", retryable=True
            ) from None
        except openai.APIStatusError as exc:
            raise provider_error_from_status(self.label, exc.status_code, _detail(exc), exc.response.headers) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"cannot reach {self.label} at {self.base_url}: {exc}", retryable=True) from None
        except openai.OpenAIError as exc:
            raise ProviderError(f"{self.label} failed: {exc}") from None
        result.text = "".join(parts)
        return result


def _usage_field(usage: Any, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
    return int(value or 0)


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message
