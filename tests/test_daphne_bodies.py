"""Daphne hands a spooled request body to the application chunk by chunk, read when asked for."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from typing import Any

from twisted.internet.defer import Deferred

from exai_site.daphne_limits import _read_spooled_body_lazily


class Request:
    """What the lazy reader uses of daphne's request: its spooled body, and when it is over."""

    def __init__(self, content: Any) -> None:
        self.content = content
        self.finished: Deferred[None] = Deferred()

    def notifyFinish(self) -> Deferred[None]:
        return self.finished


async def test_the_queue_holds_offsets_and_reads_each_chunk_when_it_is_taken() -> None:
    data = os.urandom(300_000)
    queue: asyncio.Queue = asyncio.Queue()
    with tempfile.TemporaryFile() as spooled:
        spooled.write(data)
        spooled.seek(0)
        _read_spooled_body_lazily(queue, Request(spooled))
        while chunk := spooled.read(100_000):  # what daphne does: put every chunk at once
            queue.put_nowait({"type": "http.request", "body": chunk, "more_body": spooled.tell() < len(data)})
    queue.put_nowait({"type": "http.disconnect"})  # daphne's own file is closed by now

    assert all(isinstance(item, tuple) for item in list(queue._queue)[:3])  # no bytes held
    received = [await queue.get() for _ in range(3)]
    assert b"".join(message["body"] for message in received) == data
    assert [message["more_body"] for message in received] == [True, True, False]
    assert await queue.get() == {"type": "http.disconnect"}


async def test_a_body_kept_in_memory_is_left_as_it_is() -> None:
    queue: asyncio.Queue = asyncio.Queue()
    _read_spooled_body_lazily(queue, Request(io.BytesIO(b"small")))
    queue.put_nowait({"type": "http.request", "body": b"small", "more_body": False})
    assert await queue.get() == {"type": "http.request", "body": b"small", "more_body": False}


async def test_a_finished_request_lets_its_spooled_body_go_even_if_it_was_never_read() -> None:
    queue: asyncio.Queue = asyncio.Queue()
    with tempfile.TemporaryFile() as spooled:
        spooled.write(b"x" * 300_000)
        spooled.seek(0)
        request = Request(spooled)
        held = len(os.listdir("/proc/self/fd"))
        _read_spooled_body_lazily(queue, request)
        queue.put_nowait({"type": "http.request", "body": spooled.read(100_000), "more_body": True})
        assert len(os.listdir("/proc/self/fd")) == held + 1  # its own descriptor, to read the body later
    # daphne closes its file when the request is over
    request.finished.callback(None)  # answered (here: refused) before the body was read
    assert len(os.listdir("/proc/self/fd")) == held - 1
    assert await queue.get() == {"type": "http.request", "body": b"", "more_body": False}
