"""Fit daphne's limits to EXAI's: WebSocket messages, and request bodies.

Bodies: daphne reads a whole request body (to a temporary file) before the application
sees the request, so an upload over EXAI_MAX_UPLOAD_BYTES would be read in full only to
be refused. A request whose Content-Length is over the limit is answered 413 from its
headers instead, and the connection closed without reading the body.

Bodies in memory: Twisted parses every multipart POST body into `request.args` (which
daphne never reads), holding the whole upload in memory several times over, so daphne's
requests are made with `parsePOSTFormSubmission=False`. And daphne hands a spooled body
to the application by putting every chunk of it into the application's queue at once, so
the whole body sat in memory once more: for a body Twisted spooled to a temporary file,
the queue now keeps where each chunk is in that file and reads it when the application
asks for it, in 1 MiB chunks instead of 8 KiB (unless set on the command line), so
Django's spooling is not a thread hop per 8 KiB. Together: a 256 MiB upload went from
16.6 s and 3.3 GiB of RSS to about 1 s and 15 MiB (benchmarks/file_ingest.py).

WebSocket messages: lift daphne's 1 MiB cap to EXAI's frame limit once a socket has
authenticated; before, its limit is the small EXAI_PRE_AUTH_FRAME_BYTES (exai_site/sockets.py).

Daphne drops any message over 1 MiB (without a close frame) unless it is started
with --websocket-max-message-size, so the contract's plain
`daphne -b 127.0.0.1 -p 8079 exai_site.asgi:application` would kill a socket that
sends a 2 MiB prompt. When daphne's limits are still at that default, raise them
to twice EXAI_MAX_FRAME_BYTES: the consumers answer frames between the two limits
with a clear `invalid_request`, and daphne still fails the connection on anything
larger, so an unauthenticated client cannot exhaust memory. A value given on
daphne's command line is kept as it is.
"""

import asyncio
import contextlib
import functools
import io
import json
import os
import weakref
from collections import deque
from typing import Any

from django.conf import settings

from exai_site.redaction import scrub
from exai_site.sockets import FRAME_LIMIT_EXTENSION
from exai_site.text import upload_too_large_message

DAPHNE_DEFAULT_LIMIT = 1024 * 1024
DAPHNE_DEFAULT_BODY_CHUNK = 8192
BODY_CHUNK = 1024 * 1024
# A multipart body carries boundaries and part headers beside the file itself.
MULTIPART_SLACK = 64 * 1024


def install() -> None:
    try:
        from daphne.server import Server
    except ImportError:  # served by another ASGI server
        return
    if getattr(Server, "_exai_limits_installed", False):
        return
    original = Server.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        ceiling = 2 * settings.EXAI_MAX_FRAME_BYTES
        if self.websocket_max_message_size == DAPHNE_DEFAULT_LIMIT:
            self.websocket_max_message_size = ceiling
        if self.websocket_max_frame_size == DAPHNE_DEFAULT_LIMIT:
            self.websocket_max_frame_size = ceiling
        if self.request_buffer_size == DAPHNE_DEFAULT_BODY_CHUNK:
            self.request_buffer_size = BODY_CHUNK

    create_application = Server.create_application

    @functools.wraps(create_application)
    def create_application_reading_lazily(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope.get("type") == "websocket":
            scope["extensions"] = {
                **(scope.get("extensions") or {}),
                FRAME_LIMIT_EXTENSION: _frame_limit_setter(protocol),
            }
            _let_go_of_the_handshake(protocol)
        queue = create_application(self, protocol, scope)
        if queue is not None and scope.get("type") == "http":
            _read_spooled_body_lazily(queue, protocol)
        return queue

    Server.__init__ = __init__
    Server.create_application = create_application_reading_lazily
    Server._exai_limits_installed = True
    _adapt_requests()
    _close_with_reasons()
    _scrub_access_log()


def _scrub_access_log() -> None:
    """Keep tokens out of daphne's access log (`?token=` on a WebSocket URL), which bypasses logging."""
    from daphne.access import AccessLogGenerator

    write_entry = AccessLogGenerator.write_entry

    @functools.wraps(write_entry)
    def write_scrubbed_entry(self: Any, host: Any, date: Any, request: str, *args: Any, **kwargs: Any) -> None:
        write_entry(self, host, date, scrub(request), *args, **kwargs)

    AccessLogGenerator.write_entry = write_scrubbed_entry


def _frame_limit_setter(protocol: Any) -> Any:
    """Let the application set this socket's largest frame and message (exai_site/sockets.py).

    Going over it closes the socket with 1009 and a reason, rather than dropping the connection.
    """
    protocol.failByDrop = False

    def set_limit(size: int) -> None:
        protocol.maxMessagePayloadSize = protocol.maxFramePayloadSize = size

    return set_limit


def _let_go_of_the_handshake(protocol: Any) -> None:
    """Drop the upgraded HTTP request, which the connection would otherwise keep for its whole life.

    Twisted's HTTP channel registers itself as its connection's producer; daphne hands the
    connection to the WebSocket protocol but leaves that registration, so every socket keeps
    its handshake's channel, request, headers and body buffer (several KiB an idle socket:
    benchmarks/connections.py). The WebSocket protocol registers no producer of its own."""
    from twisted.web.http import HTTPChannel

    transport: Any = getattr(protocol, "transport", None)
    if transport is not None and isinstance(getattr(transport, "producer", None), HTTPChannel):
        with contextlib.suppress(Exception):
            transport.unregisterProducer()


def _close_with_reasons() -> None:
    """Send the application's close reason to the client too (daphne sends only the code)."""
    from daphne.ws_protocol import WebSocketProtocol

    handle_reply = WebSocketProtocol.handle_reply

    @functools.wraps(handle_reply)
    def handle_reply_with_reason(self: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and message.get("reason") and self.state == self.STATE_OPEN:
            self.sendClose(code=message.get("code") or 1000, reason=str(message["reason"])[:120])
            return
        handle_reply(self, message)

    WebSocketProtocol.handle_reply = handle_reply_with_reason


def _read_spooled_body_lazily(queue: asyncio.Queue[Any], request: Any) -> None:
    """Make `queue` hold (offset, length) for each body chunk and read the bytes on `get`.

    Daphne reads the spooled body from offset 0 in order, so a running offset locates
    every chunk; a duplicate descriptor lets the reads happen later, at their own offsets.
    Small bodies are kept in memory by Twisted (no file) and are left as they are.
    """
    try:
        fd = os.dup(request.content.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return
    close = weakref.finalize(queue, os.close, fd)
    # The spooled file is let go as soon as the request is over (answered, or the client gone),
    # whether or not the application read the whole body, not whenever the queue is collected.
    request.notifyFinish().addBoth(lambda _: close())
    items: deque[Any] = deque()
    position = 0

    def put(message: dict[str, Any]) -> None:
        nonlocal position
        if message.get("type") == "http.request" and message.get("body"):
            length = len(message["body"])
            items.append((position, length, message.get("more_body", False)))
            position += length
        else:
            items.append(message)

    def get() -> dict[str, Any]:
        item = items.popleft()
        if isinstance(item, dict):
            return item
        offset, length, more_body = item
        if not close.alive:  # the request is over: nobody wants the rest
            return {"type": "http.request", "body": b"", "more_body": False}
        body = os.pread(fd, length, offset)
        if not more_body:
            close()
        return {"type": "http.request", "body": body, "more_body": more_body}

    queue._queue = items  # type: ignore[attr-defined]
    queue._put = put  # type: ignore[method-assign, assignment]
    queue._get = get  # type: ignore[method-assign]


class _Discard:
    def write(self, data: bytes) -> None:
        pass

    def seek(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _adapt_requests() -> None:
    """No multipart parsing by Twisted; 413 for a body over the upload limit, from its headers or as it arrives."""
    from daphne.http_protocol import WebRequest

    request_init, got_length, process = WebRequest.__init__, WebRequest.gotLength, WebRequest.process
    handle_content_chunk = WebRequest.handleContentChunk

    @functools.wraps(request_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        request_init(self, *args, **kwargs)

    def refuse(self: Any) -> None:
        """Answer 413 and hang up: the rest of the body is never read, what was spooled is let go."""
        message = upload_too_large_message(settings.EXAI_MAX_UPLOAD_BYTES)
        body = json.dumps({"error": {"code": "too_large", "message": message, "details": None}}).encode()
        self._exai_refused = True
        spooled, self.content = getattr(self, "content", None), _Discard()
        if spooled is not None:
            spooled.close()
        self.channel.transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        self.channel.transport.loseConnection()  # stops reading: the body is never received

    def gotLength(self: Any, length: int | None) -> None:
        if length is not None and length > settings.EXAI_MAX_UPLOAD_BYTES + MULTIPART_SLACK:
            refuse(self)
            return
        self._exai_received = 0
        got_length(self, length)

    def handleContentChunk(self: Any, data: bytes) -> None:
        # A chunked body announces no length: it is counted as it arrives and refused at the limit.
        if getattr(self, "_exai_refused", False):
            return
        self._exai_received += len(data)
        if self._exai_received > settings.EXAI_MAX_UPLOAD_BYTES + MULTIPART_SLACK:
            refuse(self)
            return
        handle_content_chunk(self, data)

    def process_unless_refused(self: Any) -> Any:
        if getattr(self, "_exai_refused", False):
            return None
        return process(self)

    WebRequest.__init__ = __init__
    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.process = process_unless_refused
