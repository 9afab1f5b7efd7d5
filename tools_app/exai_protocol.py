"""The EXAI protocol, apart from any transport: hello, list_tools, call_tool, cancel, ping,
health (the contract: DESIGN.md). Like `McpServer` for MCP, an `ExaiSession` takes frames
and answers through the callables it is given; `tools_app/consumers.py` feeds it a
WebSocket's frames.

A session answers every frame, malformed or refused ones included (an `error` op, or a
`call_tool_res` for a call so a client waiting on it hears); it serves nothing but `hello`
before a valid token, and hangs up on a token that lapses or is revoked while it is open.
Calls run apart from the session (tools_app/resume.py): a session that stops only stops
waiting for them, and a client that reconnects and resends a request_id picks its call up.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from exai_site.auth import Authentication, authenticate_token, reauthenticate
from exai_site.outages import unreachable_service
from exai_site.sockets import CLOSE_TOO_MANY, CLOSE_UNAUTHORIZED, SocketSlot
from exai_site.text import clean_decoded
from tools_app.health import health_snapshot
from tools_app.idempotency import idempotency_key
from tools_app.ratelimit import RateLimited, frame_limiter
from tools_app.resume import Emit, call_registry
from tools_app.services import (
    error_outcome,
    failure_outcome,
    interrupted_outcome,
    rate_limited_outcome,
    tool_call,
    tool_descriptors,
)
from tools_app.streaming import DeltaCoalescer

logger = logging.getLogger(__name__)

CLOSE_TRY_AGAIN_LATER = 4503  # a service the server needs is away for a moment: come back soon
# The server's reply deadline sits above the tool's, so the tool's `timeout` always arrives first.
REPLY_GRACE_S = 5.0

Send = Callable[[dict[str, Any]], Awaitable[None]]
Close = Callable[[int], Awaitable[None]]


def frame_too_large(text_data: str | None, bytes_data: bytes | None) -> int | None:
    """Return the frame's size when it is over EXAI_MAX_FRAME_BYTES, else None."""
    limit = settings.EXAI_MAX_FRAME_BYTES
    if bytes_data is not None and len(bytes_data) > limit:
        return len(bytes_data)
    # A str of n characters is at least n bytes in UTF-8: encode only when it could be over.
    if text_data is not None and len(text_data) * 4 > limit:
        size = len(text_data.encode("utf-8", "surrogatepass"))
        return size if size > limit else None
    return None


def decode_frame(text_data: str | None, bytes_data: bytes | None) -> tuple[dict[str, Any], str | None]:
    """The frame as a JSON object, or {} and what is wrong with it."""
    if (size := frame_too_large(text_data, bytes_data)) is not None:
        return {}, f"frame of {size:,} bytes is over the limit of {settings.EXAI_MAX_FRAME_BYTES:,}"
    if text_data is None:
        return {}, "binary frames are not supported; send JSON text frames"
    try:
        message = clean_decoded(json.loads(text_data), text_data)
    except ValueError as exc:
        return {}, f"malformed JSON: {exc}"
    except RecursionError:
        return {}, "malformed JSON: nested too deeply"
    if not isinstance(message, dict):
        return {}, "a frame must be a JSON object with an `op`"
    return message, None


class ExaiSession:
    """One client's EXAI session: what it may do, and the calls it waits for.

    `send` delivers one message to the client (and may find it gone); `close` hangs up with
    a WebSocket close code; `slot` is the connection's place in the per-user socket limit.
    """

    def __init__(self, *, auth: Authentication, send: Send, close: Close, slot: SocketSlot | None = None) -> None:
        self.auth = auth
        self._send, self._close, self._slot = send, close, slot
        self.session_id = uuid.uuid4().hex
        self.calls: dict[str, asyncio.Task[None]] = {}  # this session's wait for each of its calls
        self.replies: set[asyncio.Future[None]] = set()
        self.closing = False
        self.frames = frame_limiter()

    def stop(self) -> None:
        """The client is gone: stop waiting for its calls (they run on for EXAI_RESUME_GRACE_S,
        for the client to reconnect and resend)."""
        self.closing = True
        for task in list(self.calls.values()):
            task.cancel()

    async def send(self, payload: dict[str, Any]) -> None:
        if self.closing:
            return
        try:
            await self._send(payload)
        except Exception:
            # The peer went away before the server heard of it: nothing to tell, and the
            # stop that follows detaches the calls (they run on for a reconnect).
            if not self.closing:
                logger.info("socket closed under a frame; %s dropped", payload.get("op"))
                self.closing = True

    async def reply_error(
        self, code: str, message: str, request_id: Any = None, *, retry_after_s: float | None = None
    ) -> None:
        payload: dict[str, Any] = {"op": "error", "error": {"code": code, "message": message}}
        if retry_after_s is not None:
            payload["error"]["retry_after_s"] = retry_after_s
        if request_id is not None:
            payload["request_id"] = request_id
        await self.send(payload)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Answer one frame from the client."""
        wait = self.frames.take()  # one inbound frame against EXAI_WS_FRAMES_PER_S
        refused = RateLimited("frames on this connection", round(wait, 3)) if wait else None
        message, problem = decode_frame(text_data, bytes_data)
        op = message.get("op")
        request_id = message.get("request_id")
        if refused is not None:
            # Dropped unread; a call is answered as a call, so a client waiting on it hears.
            if op == "call_tool" and isinstance(request_id, str):
                await self.send({"op": "call_tool_res", "request_id": request_id, **rate_limited_outcome(refused)})
            else:
                await self.reply_error("overloaded", refused.message, request_id, retry_after_s=refused.retry_after_s)
            return
        if problem is not None:
            await self.reply_error("invalid_request", problem)
            return
        if not isinstance(op, str) or op not in self.handlers:
            await self.reply_error(
                "invalid_request",
                f"unknown op {op!r}; expected one of {', '.join(self.handlers)}",
                request_id,
            )
            return
        if op != "hello" and not await self._authorized(op, request_id):
            return
        await self.handlers[op](self, message)

    async def _authorized(self, op: str, request_id: Any) -> bool:
        """Serve only a valid, unexpired, unrevoked token; otherwise refuse (and hang up on a lost one)."""
        had_access = self.auth.user is not None
        if had_access and self.auth.due_for_recheck():
            self.auth = await database_sync_to_async(reauthenticate)(self.auth)
        if self.auth.user is not None and (self.auth.expires_at or 0) > time.time():
            return True
        reason = self.auth.error or "unauthorized: send `hello` with an access token first"
        if self.auth.user is not None:
            reason = "unauthorized: the access token has expired; reconnect with a fresh one"
        if op == "call_tool" and isinstance(request_id, str):
            await self.send({"op": "call_tool_res", "request_id": request_id, **error_outcome("unauthorized", reason)})
        else:
            await self.reply_error("unauthorized", reason, request_id)
        if had_access:
            await self._close(CLOSE_UNAUTHORIZED)
        return False

    async def op_hello(self, message: dict[str, Any]) -> None:
        token = message.get("token")
        try:
            auth = await database_sync_to_async(authenticate_token)(token if isinstance(token, str) else None)
        except Exception as exc:
            if unreachable_service(exc) is None:
                raise
            # The token cannot be checked now: say so, retryably, and let the client come back.
            error = failure_outcome(exc, "", failed="hello")["error"]
            await self.send({"op": "hello_ack", "ok": False, "error": error})
            await self._close(CLOSE_TRY_AGAIN_LATER)
            return
        if auth.user is None:
            await self.send({"op": "hello_ack", "ok": False, "error": {"code": "unauthorized", "message": auth.error}})
            await self._close(CLOSE_UNAUTHORIZED)
            return
        if self._slot is not None and (refusal := self._slot.authenticate(auth.user.pk)) is not None:
            await self.send({"op": "hello_ack", "ok": False, "error": {"code": "overloaded", "message": refusal}})
            await self._close(CLOSE_TOO_MANY)
            return
        self.auth = auth
        session_id = message.get("session_id")
        if isinstance(session_id, str) and 0 < len(session_id) <= 128:
            self.session_id = session_id
        await self.send({"op": "hello_ack", "ok": True, "session_id": self.session_id})

    async def op_list_tools(self, message: dict[str, Any]) -> None:
        await self.send({"op": "list_tools_res", "tools": tool_descriptors()})

    async def op_ping(self, message: dict[str, Any]) -> None:
        await self.send({"op": "pong"})

    async def op_health(self, message: dict[str, Any]) -> None:
        await self.send({"op": "health_res", **await health_snapshot()})

    async def op_cancel(self, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        task = self.calls.get(request_id) if isinstance(request_id, str) else None
        if task is None or not isinstance(request_id, str):
            await self.reply_error("invalid_request", f"no call in flight with request_id {request_id!r}", request_id)
            return
        # Decided without an await, so the call cannot start in between: a call running here is
        # stopped (and this session's wait answers `cancelled`); otherwise the wait is cancelled,
        # which keeps the call from starting, and a call on another process is told to stop.
        registry, key = call_registry(), self._key(request_id)
        if not registry.cancel_here(key):
            task.cancel()
            await registry.cancel_elsewhere(key)

    def _key(self, request_id: str) -> str:
        return idempotency_key(self.auth.user.pk, self.session_id, request_id)  # type: ignore[union-attr]

    async def op_call_tool(self, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            await self.reply_error("invalid_request", "call_tool needs a non-empty string `request_id`")
            return
        if request_id in self.calls:
            await self.reply_error("invalid_request", f"request_id {request_id!r} is already in flight", request_id)
            return
        task = self.calls[request_id] = asyncio.ensure_future(self._serve_call(request_id, message))
        task.add_done_callback(functools.partial(self._call_done, request_id))

    def _call_done(self, request_id: str, task: asyncio.Task[None]) -> None:
        self.calls.pop(request_id, None)
        if task.cancelled() and not self.closing:
            # Cancelled before it ever ran (its own handler answers every later cancel): answer here.
            reply = asyncio.ensure_future(
                self.send({"op": "call_tool_res", "request_id": request_id, **interrupted_outcome()})
            )
            self.replies.add(reply)
            reply.add_done_callback(self.replies.discard)

    async def _serve_call(self, request_id: str, message: dict[str, Any]) -> None:
        """Answer one call_tool: from the stored result, by joining the call where it runs, or by running it.

        The call runs apart from this session (tools_app/resume.py): when the socket drops it
        goes on for EXAI_RESUME_GRACE_S, and the client's resend of `request_id` picks it up.
        """
        deadline_s = settings.EXAI_TOOL_TIMEOUT_S + REPLY_GRACE_S
        heartbeat: asyncio.Task[None] | None = None

        def run(emit: Emit) -> Awaitable[dict[str, Any]]:
            return self._execute(request_id, message, deadline_s, emit)

        try:
            await self.send(
                {"op": "call_tool_ack", "request_id": request_id, "accepted": True, "timeout_s": deadline_s}
            )
            heartbeat = asyncio.ensure_future(self._heartbeat(request_id))
            outcome = await call_registry().serve(
                self._key(request_id),
                self.send,
                run,
                user_id=self.auth.user.pk,  # type: ignore[union-attr]
            )
            await self.send({"op": "call_tool_res", "request_id": request_id, **outcome})
        except asyncio.CancelledError:
            if not self.closing:
                await self.send({"op": "call_tool_res", "request_id": request_id, **interrupted_outcome()})
        except Exception as exc:
            # Before the call could start (its stored result or claim unreadable): retryable if a
            # service is down, else internal.
            failed = failure_outcome(
                exc, "internal error; it has been logged", failed=f"call {request_id} outside its tool"
            )
            await self.send({"op": "call_tool_res", "request_id": request_id, **failed})
        finally:
            if heartbeat is not None:
                heartbeat.cancel()

    async def _execute(self, request_id: str, message: dict[str, Any], deadline_s: float, emit: Emit) -> dict[str, Any]:
        name = message.get("name")
        if not isinstance(name, str) or not name:
            return dict(error_outcome("invalid_request", "call_tool needs a string `name`"))
        arguments = message.get("arguments", {})

        async def on_progress(text: str) -> None:
            await emit({"op": "progress", "request_id": request_id, "message": text})

        async def send_delta(delta: str) -> None:
            await emit({"op": "stream", "request_id": request_id, "delta": delta})

        async def send_reasoning(delta: str) -> None:
            await emit({"op": "stream", "request_id": request_id, "delta": delta, "kind": "reasoning"})

        interval_s = settings.EXAI_STREAM_INTERVAL_MS / 1000
        stream, reasoning = DeltaCoalescer(send_delta, interval_s), DeltaCoalescer(send_reasoning, interval_s)
        try:
            async with asyncio.timeout(deadline_s):
                outcome = await tool_call(
                    user=self.auth.user,  # type: ignore[arg-type]
                    name=name,
                    arguments={} if arguments is None else arguments,
                    request_id=request_id,
                    on_progress=on_progress,
                    on_stream=stream.push,
                    on_reasoning=reasoning.push,
                )
        except TimeoutError:
            outcome = error_outcome("timeout", f"no reply within the server's deadline of {deadline_s:g}s")
        await reasoning.close()
        await stream.close()
        return dict(outcome)

    async def _heartbeat(self, request_id: str) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(settings.EXAI_HEARTBEAT_S)
            elapsed = time.monotonic() - started
            await self.send({"op": "progress", "request_id": request_id, "message": f"working ({elapsed:.0f}s)"})

    handlers = {
        "hello": op_hello,
        "list_tools": op_list_tools,
        "call_tool": op_call_tool,
        "cancel": op_cancel,
        "ping": op_ping,
        "health": op_health,
    }
