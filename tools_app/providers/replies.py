"""A streamed reply as it arrives: answer and reasoning apart, judged when the stream ends."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tools_app.providers.base import ProviderError

DeltaCallback = Callable[[str], Awaitable[None]]

# Appended to an answer that did not end by itself, so a client that shows only the text still sees it.
CUT_NOTES = {
    "deadline": "[answer cut: the call's deadline passed while the model was still writing]",
    "incomplete": "[answer cut: the provider's stream ended before the answer was complete]",
}


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
