"""Coalesce streamed text so a reply of hundreds of tokens costs a handful of frames."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class DeltaCoalescer:
    """Buffer deltas and hand them on joined, at most once every `interval_s`.

    The first delta of a quiet stream starts a timer; everything that arrives before
    it fires goes out as one chunk. `close()` sends what is left, so the last text
    always precedes the call's result.
    """

    def __init__(self, send: Callable[[str], Awaitable[None]], interval_s: float) -> None:
        self._send = send
        self._interval_s = interval_s
        self._parts: list[str] = []
        self._timer: asyncio.Task[None] | None = None

    async def push(self, delta: str) -> None:
        self._parts.append(delta)
        if self._timer is None:
            self._timer = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._interval_s)
        self._timer = None
        await self._flush()

    async def _flush(self) -> None:
        if self._parts:
            text, self._parts = "".join(self._parts), []
            await self._send(text)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._flush()
