"""Resumable MCP streams: what a POST's SSE stream carried, kept so a client can pick it up again.

Every message a `tools/call` stream sends (progress, log messages, the result) is numbered and
kept for EXAI_MCP_STREAM_TTL_S after the last one: event id `{stream}-{n}`, the stream's
priming event being `{stream}-0`. A client that lost the stream sends `GET /mcp` with
`Last-Event-ID`, and gets every message after that one, then the rest as the call goes on,
then the result (tools_app/mcp_http.py).

The call does not stop when its stream drops: it goes on for EXAI_MCP_RESUME_GRACE_S, and for
as long after that as someone reads it again; a stream nobody came back to by then is
cancelled (a client that crashed holds no provider slot for long). `notifications/cancelled`
still stops it at once.

With REDIS_URL the events live in a Redis stream (entry ids `0-n`), so a client may resume at
any server process; without it, in this process's memory.
"""

from __future__ import annotations

import abc
import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from tools_app.redis_client import get_redis, redis_key

# A reader blocks on Redis at most this long between checks (below the client's socket timeout).
_BLOCK_S = 5.0


class UnknownStream(LookupError):
    """No such stream for this caller: never made, expired, or someone else's."""


def event_id(stream_id: str, seq: int) -> str:
    return f"{stream_id}-{seq}"


def parse_event_id(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    stream_id, _, seq = value.strip().rpartition("-")
    if not stream_id or len(stream_id) > 64 or not seq.isdigit():
        return None
    return stream_id, int(seq)


@dataclass
class Event:
    seq: int
    message: dict[str, Any] | None  # None: the stream's end (nothing more will come)


class EventLog(abc.ABC):
    """Where streams' events are kept; one writer per stream (the process running the call)."""

    @abc.abstractmethod
    async def open(self, stream_id: str, owner: str) -> None: ...

    @abc.abstractmethod
    async def append(self, stream_id: str, seq: int, message: dict[str, Any] | None) -> None:
        """Keep event `seq` (None: the end)."""

    @abc.abstractmethod
    async def read(self, stream_id: str, owner: str, after: int) -> AsyncIterator[Event | None]:
        """Events after `after`, in order, as they come, until the end; None while nothing new
        came for about a heartbeat (for a keepalive). UnknownStream for a stream not `owner`'s."""
        yield None

    @abc.abstractmethod
    async def reading(self, stream_id: str, for_s: float) -> None:
        """Note that a client reads the stream (for the next `for_s` seconds)."""

    @abc.abstractmethod
    async def read_lately(self, stream_id: str) -> bool:
        """Whether a client read the stream within its last `reading` window."""


@dataclass
class _Stream:
    owner: str
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    expires: float = 0.0
    read_until: float = 0.0


class MemoryEventLog(EventLog):
    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def _sweep(self) -> None:
        now = time.monotonic()
        for stream_id in [key for key, stream in self._streams.items() if stream.expires < now]:
            del self._streams[stream_id]

    async def open(self, stream_id: str, owner: str) -> None:
        self._sweep()
        self._streams[stream_id] = _Stream(owner, expires=time.monotonic() + settings.EXAI_MCP_STREAM_TTL_S)

    async def append(self, stream_id: str, seq: int, message: dict[str, Any] | None) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.events.append(Event(seq, message))
        stream.expires = time.monotonic() + settings.EXAI_MCP_STREAM_TTL_S
        stream.changed.set()
        stream.changed = asyncio.Event()

    async def read(self, stream_id: str, owner: str, after: int) -> AsyncIterator[Event | None]:
        stream = self._streams.get(stream_id)
        if stream is None or stream.owner != owner or stream.expires < time.monotonic():
            raise UnknownStream(stream_id)
        while True:
            fresh = [event for event in stream.events if event.seq > after]
            for event in fresh:
                yield event
                if event.message is None:
                    return
                after = event.seq
            if fresh:
                continue
            changed = stream.changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=settings.EXAI_HEARTBEAT_S)
            except TimeoutError:
                yield None

    async def reading(self, stream_id: str, for_s: float) -> None:
        if (stream := self._streams.get(stream_id)) is not None:
            stream.read_until = max(stream.read_until, time.monotonic() + for_s)

    async def read_lately(self, stream_id: str) -> bool:
        stream = self._streams.get(stream_id)
        return stream is not None and stream.read_until > time.monotonic()


class RedisEventLog(EventLog):
    @staticmethod
    def _key(stream_id: str, part: str = "events") -> str:
        return redis_key("mcp", "stream", stream_id, part)

    async def open(self, stream_id: str, owner: str) -> None:
        await get_redis().set(self._key(stream_id, "owner"), owner, ex=int(settings.EXAI_MCP_STREAM_TTL_S))

    async def append(self, stream_id: str, seq: int, message: dict[str, Any] | None) -> None:
        ttl = int(settings.EXAI_MCP_STREAM_TTL_S)
        fields = {"m": json.dumps(message)} if message is not None else {"end": "1"}
        async with get_redis().pipeline(transaction=False) as pipe:
            pipe.xadd(self._key(stream_id), fields, id=f"0-{seq + 1}")  # Redis refuses the id 0-0
            pipe.expire(self._key(stream_id), ttl)
            pipe.expire(self._key(stream_id, "owner"), ttl)
            await pipe.execute()

    async def read(self, stream_id: str, owner: str, after: int) -> AsyncIterator[Event | None]:
        redis = get_redis()
        stored = await redis.get(self._key(stream_id, "owner"))
        if stored is None or stored.decode() != owner:
            raise UnknownStream(stream_id)
        last = f"0-{after + 1}"
        block_ms = int(min(settings.EXAI_HEARTBEAT_S, _BLOCK_S) * 1000)
        while True:
            reply = await redis.xread({self._key(stream_id): last}, block=block_ms, count=100)
            if not reply:
                if not await redis.exists(self._key(stream_id, "owner")):
                    return  # expired meanwhile: nothing more will come
                yield None
                continue
            for entry_id, fields in reply[0][1]:
                last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                seq = int(last.split("-")[1]) - 1
                if b"end" in fields:
                    yield Event(seq, None)
                    return
                yield Event(seq, json.loads(fields[b"m"]))

    async def reading(self, stream_id: str, for_s: float) -> None:
        await get_redis().set(self._key(stream_id, "reader"), "1", px=max(1, int(for_s * 1000)))

    async def read_lately(self, stream_id: str) -> bool:
        return bool(await get_redis().exists(self._key(stream_id, "reader")))


_memory_log = MemoryEventLog()


def get_event_log() -> EventLog:
    return RedisEventLog() if settings.REDIS_URL else _memory_log
