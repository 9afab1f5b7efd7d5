"""Bounds on WebSockets before and after they authenticate, for every socket route.

A socket costs a file descriptor and memory whether or not it ever logs in, so:
- at most EXAI_WS_MAX_PER_ADDRESS sockets from one client address and EXAI_WS_MAX_SOCKETS
  in all (never more than the process's descriptor limit leaves room for: health checks,
  REST, the database and Redis keep theirs) are open at once; the excess is accepted only
  to be closed with 4429 and a reason;
- a socket that has not authenticated within EXAI_HELLO_TIMEOUT_S is closed with 4401;
- before it authenticates, a socket may send frames of EXAI_PRE_AUTH_FRAME_BYTES at most
  (under daphne the limit is the WebSocket protocol's own, so a larger frame is refused as
  it arrives, with 1009, before it is buffered); afterwards the frame limit is the usual one;
- one user holds at most EXAI_WS_MAX_PER_USER sockets.

The counts are this process's: they bound what one process holds, which is what runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections import Counter
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings

from exai_site.auth import NO_AUTHENTICATION, authenticate_token_or_say_why, token_from_headers
from exai_site.origins import origin_allowed, scope_header

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429
CLOSE_TOO_BIG = 1009
# Descriptors kept free for everything that is not a WebSocket.
DESCRIPTOR_RESERVE = 256
SCOPE_KEY = "exai.socket"
FRAME_LIMIT_EXTENSION = "exai.frame_limit"


def descriptor_limit() -> int:
    """Raise this process's open-file limit to its hard limit (as servers do) and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class SocketGuard:
    """This process's open sockets, by client address and by user."""

    def __init__(self) -> None:
        self.total = 0
        self.by_address: Counter[str] = Counter()
        self.by_user: Counter[Any] = Counter()
        self.capacity = max(1, descriptor_limit() - DESCRIPTOR_RESERVE)

    def admit(self, address: str | None) -> str | None:
        """Count a new socket from `address`; say why not when it is one too many."""
        limit = min(settings.EXAI_WS_MAX_SOCKETS, self.capacity)
        if self.total >= limit:
            return f"this server holds its limit of {limit} sockets; retry later"
        if address is not None and self.by_address[address] >= settings.EXAI_WS_MAX_PER_ADDRESS:
            return f"too many sockets from your address (limit {settings.EXAI_WS_MAX_PER_ADDRESS}); close some first"
        self.total += 1
        if address is not None:
            self.by_address[address] += 1
        return None

    def release(self, address: str | None) -> None:
        self.total -= 1
        if address is not None:
            self.by_address[address] -= 1
            if self.by_address[address] <= 0:
                del self.by_address[address]

    def admit_user(self, user_id: Any) -> str | None:
        if self.by_user[user_id] >= settings.EXAI_WS_MAX_PER_USER:
            return f"too many sockets for your user (limit {settings.EXAI_WS_MAX_PER_USER}); close some first"
        self.by_user[user_id] += 1
        return None

    def release_user(self, user_id: Any) -> None:
        self.by_user[user_id] -= 1
        if self.by_user[user_id] <= 0:
            del self.by_user[user_id]


_guard: SocketGuard | None = None


def socket_guard() -> SocketGuard:
    global _guard
    if _guard is None:
        _guard = SocketGuard()
    return _guard


class SocketSlot:
    """One socket's place in the guard (its address, its user once authenticated), and the guard's
    hold on it: the pre-authentication frame limit and deadline.

    One slotted object per socket, with no closures or task of its own, since thousands of idle
    sockets each carry one (benchmarks/connections.py).
    """

    __slots__ = (
        "_receive",
        "_send",
        "_set_frame_limit",
        "address",
        "authenticated",
        "closed",
        "closing",
        "guard",
        "user_id",
    )

    def __init__(self, guard: SocketGuard, address: str | None, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.guard, self.address = guard, address
        self.user_id: Any = None
        self.authenticated = False
        self.closed = False
        self.closing: asyncio.Task[None] | None = None
        self._receive, self._send = receive, send
        extension = (scope.get("extensions") or {}).get(FRAME_LIMIT_EXTENSION)
        self._set_frame_limit: Callable[[int], None] | None = extension
        if extension is not None:
            extension(settings.EXAI_PRE_AUTH_FRAME_BYTES)

    def authenticate(self, user_id: Any) -> str | None:
        """The socket's user is known: count it against the user's cap and lift the small-frame limit."""
        if self.authenticated:
            if user_id == self.user_id:
                return None
            self.guard.release_user(self.user_id)  # a second hello as someone else
            self.authenticated = False
        if (refusal := self.guard.admit_user(user_id)) is not None:
            return refusal
        self.user_id, self.authenticated = user_id, True
        if self._set_frame_limit is not None:
            self._set_frame_limit(2 * settings.EXAI_MAX_FRAME_BYTES)
        return None

    def release(self) -> None:
        if self.authenticated:
            self.guard.release_user(self.user_id)
        self.guard.release(self.address)

    async def receive(self) -> dict[str, Any]:
        """The next message for the application; a large frame before authentication closes the socket."""
        while True:
            message = await self._receive()
            if (
                message["type"] == "websocket.receive"
                and not self.authenticated
                and frame_size(message) > settings.EXAI_PRE_AUTH_FRAME_BYTES
            ):
                limit = settings.EXAI_PRE_AUTH_FRAME_BYTES
                await self.close(CLOSE_TOO_BIG, f"frames before authentication are limited to {limit} bytes")
                continue
            return message

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed and message["type"] in ("websocket.send", "websocket.close"):
            return  # the guard closed it; the application will hear the disconnect
        await self._send(message)

    async def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def hello_overdue(self) -> None:
        if not self.authenticated:
            reason = f"not authenticated within {settings.EXAI_HELLO_TIMEOUT_S:g}s"
            self.closing = asyncio.ensure_future(self.close(CLOSE_UNAUTHORIZED, reason))


def socket_slot(scope: dict[str, Any]) -> SocketSlot | None:
    return scope.get(SCOPE_KEY)


def frame_size(message: dict[str, Any]) -> int:
    text, data = message.get("text"), message.get("bytes")
    if data is not None:
        return len(data)
    # A str of n characters is at most 4n bytes in UTF-8: measure only when it could be over.
    if text is not None and len(text) > settings.EXAI_PRE_AUTH_FRAME_BYTES // 4:
        return len(text.encode("utf-8", "surrogatepass"))
    return 0


async def refuse(receive: Any, send: Any, code: int, reason: str) -> None:
    """Complete the handshake only to close with `code`, so the client learns why (a 403 says nothing)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": code, "reason": reason})


class WebSocketEntry:
    """The way in for every WebSocket, in one coroutine: origin check, token, caps and
    pre-authentication limits, then the route's consumer.

    Nested middlewares would each keep a coroutine frame and a copy of the scope alive for as
    long as the socket lives; with thousands of idle sockets that is a large part of what each
    costs (benchmarks/connections.py). So the steps are calls, and the scope is filled in place
    (it is this connection's own, made by the server for it).
    """

    def __init__(self, routes: list[Any]) -> None:
        # Plain paths only (`path("ws", …)`): an exact match, no URL resolving per socket.
        self.routes: dict[str, Any] = {str(route.pattern): route.callback for route in routes}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        # A page on a foreign origin is refused before its token is even looked at.
        if not origin_allowed(scope_header(scope, b"origin"), scope_header(scope, b"host")):
            return await WebsocketDenier()(scope, receive, send)
        application = self.routes.get(scope["path"].removeprefix(scope.get("root_path", "")).lstrip("/"))
        if application is None:
            return await WebsocketDenier()(scope, receive, send)
        raw = token_from_headers(scope.get("headers", []), scope.get("query_string", b""))
        auth = await database_sync_to_async(authenticate_token_or_say_why)(raw) if raw else NO_AUTHENTICATION
        scope["auth"] = auth  # the consumers' starting point (a hello may replace it)
        guard = socket_guard()
        address = (scope.get("client") or [None])[0]
        if (refusal := guard.admit(address)) is not None:
            logger.warning("refused a socket from %s: %s", address, refusal)
            return await refuse(receive, send, CLOSE_TOO_MANY, refusal)
        slot = SocketSlot(guard, address, scope, receive, send)
        try:
            if auth.user is not None and (refusal := slot.authenticate(auth.user.pk)) is not None:
                return await refuse(receive, send, CLOSE_TOO_MANY, refusal)
            # A timer, not a task per socket: idle sockets stay small.
            watchdog = asyncio.get_running_loop().call_later(settings.EXAI_HELLO_TIMEOUT_S, slot.hello_overdue)
            scope[SCOPE_KEY] = slot
            try:
                return await application(scope, slot.receive, slot.send)
            finally:
                watchdog.cancel()
        finally:
            slot.release()
