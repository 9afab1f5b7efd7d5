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

WebSocket messages: lift daphne's 1 MiB cap to EXAI's frame limit.

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
import functools
import io
import json
import os
import weakref
from collections import deque
from typing import Any

from django.conf import settings

DAPHNE_DEFAULT_LIMIT = 1024 * 1024
DAPHNE_DEFAULT_BODY_CHUNK = 8192
BODY_CHUNK = 1024 * 1024


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
        queue = create_application(self, protocol, scope)
        if queue is not None and scope.get("type") == "http":
            _read_spooled_body_lazily(queue, getattr(protocol, "content", None))
        return queue

    Server.__init__ = __init__
    Server.create_application = create_application_reading_lazily
    Server._exai_limits_installed = True
    _adapt_requests()


def _read_spooled_body_lazily(queue: asyncio.Queue[Any], content: Any) -> None:
    """Make `queue` hold (offset, length) for each body chunk and read the bytes on `get`.

    Daphne reads the spooled body from offset 0 in order, so a running offset locates
    every chunk; a duplicate descriptor lets the reads happen later, at their own offsets.
    Small bodies are kept in memory by Twisted (no file) and are left as they are.
    """
    try:
        fd = os.dup(content.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return
    close = weakref.finalize(queue, os.close, fd)  # an abandoned request closes it too
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
    """No multipart parsing by Twisted; 413 from the headers for a body over the upload limit."""
    from daphne.http_protocol import WebRequest

    from files_app.uploads import MULTIPART_SLACK, UploadTooLarge

    request_init, got_length, process = WebRequest.__init__, WebRequest.gotLength, WebRequest.process

    @functools.wraps(request_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        request_init(self, *args, **kwargs)

    def gotLength(self: Any, length: int | None) -> None:
        limit = settings.EXAI_MAX_UPLOAD_BYTES
        if length is None or length <= limit + MULTIPART_SLACK:
            got_length(self, length)
            return
        message = str(UploadTooLarge().detail)
        body = json.dumps({"error": {"code": "too_large", "message": message, "details": None}}).encode()
        self._exai_refused = True
        self.content = _Discard()
        self.channel.transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        self.channel.transport.loseConnection()  # stops reading: the body is never received

    def process_unless_refused(self: Any) -> Any:
        if getattr(self, "_exai_refused", False):
            return None
        return process(self)

    WebRequest.__init__ = __init__
    WebRequest.gotLength = gotLength
    WebRequest.process = process_unless_refused
