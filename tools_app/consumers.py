"""WebSocket consumers: the EXAI protocol on /ws and MCP (JSON-RPC) on /mcp."""

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
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from exai_site.auth import NO_AUTHENTICATION, Authentication, authenticate_token, reauthenticate
from exai_site.outages import unreachable_service
from exai_site.sockets import CLOSE_TOO_MANY, socket_slot
from exai_site.text import clean_decoded
from tools_app.health import health_snapshot
from tools_app.idempotency import idempotency_key
from tools_app.lifecycle import CLOSE_SERVICE_RESTART, get_lifecycle
from tools_app.mcp_protocol import INVALID_REQUEST, OVERLOADED, McpServer, error_response, parse_frame
from tools_app.mcp_resources import listen_for_changes
from tools_app.observers import frames
from tools_app.ratelimit import RateLimited, frame_limiter
from tools_app.resume import Emit, call_registry
from tools_app.services import (
    LocalToolBackend,
    error_outcome,
    failure_outcome,
    interrupted_outcome,
    rate_limited_outcome,
    tool_call,
    tool_descriptors,
)
from tools_app.streaming import DeltaCoalescer

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_TRY_AGAIN_LATER = 4503  # a service the server needs is away for a moment: come back soon
# The server's reply deadline sits above the tool's, so the tool's `timeout` always arrives first.
REPLY_GRACE_S = 5.0


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


def frames_refused(consumer: ExaiConsumer | McpConsumer) -> RateLimited | None:
    """Count one inbound frame against the connection's EXAI_WS_FRAMES_PER_S; say why when over."""
    wait = consumer.frames.take()
    return RateLimited("frames on this connection", round(wait, 3)) if wait else None


async def accept_into_lifecycle(consumer: AsyncWebsocketConsumer, subprotocol: str | None = None) -> None:
    """Accept the socket and register it for graceful shutdown; a draining server sends it elsewhere."""
    lifecycle = get_lifecycle()
    lifecycle.install_signal_handler()
    await consumer.accept(subprotocol=subprotocol)
    if lifecycle.draining:
        await consumer.close(code=CLOSE_SERVICE_RESTART)
        return
    lifecycle.sockets.add(consumer)


class LayerlessConsumer(AsyncWebsocketConsumer):
    """A socket that hears only its client: no channel layer, and one loop on `receive`.

    No channel-layer subscription: these sockets use no groups, and with Redis each
    subscription is a blocking pop per socket, which a thousand sockets turn into a storm.
    Channels' own loop also runs each `receive` in a task of its own; idle sockets are many,
    so this one awaits it directly (benchmarks/connections.py).
    """

    channel_layer_alias = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass


class ExaiConsumer(LayerlessConsumer):
    """The EXAI protocol: hello, list_tools, call_tool, cancel, ping, health."""

    async def connect(self) -> None:
        self.auth: Authentication = self.scope.get("auth") or NO_AUTHENTICATION
        self.session_id = uuid.uuid4().hex
        self.calls: dict[str, asyncio.Task[None]] = {}  # this socket's wait for each of its calls
        self.replies: set[asyncio.Future[None]] = set()
        self.closing = False
        self.frames = frame_limiter()
        await accept_into_lifecycle(self)

    async def disconnect(self, code: int) -> None:
        # A closed socket stops waiting for its calls; the calls themselves run on for
        # EXAI_RESUME_GRACE_S, for the client to reconnect and resend (tools_app/resume.py).
        self.closing = True
        for task in list(self.calls.values()):
            task.cancel()

    async def send_json(self, payload: dict[str, Any]) -> None:
        if self.closing:
            return
        frames["out"] += 1
        text = json.dumps(payload)
        try:
            await self.send(text_data=text)
        except Exception:
            # The peer went away before the server heard of it: nothing to tell, and the
            # disconnect that follows detaches the calls (they run on for a reconnect).
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
        await self.send_json(payload)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frames["in"] += 1
        refused = frames_refused(self)
        message, problem = self._decode(text_data, bytes_data)
        op = message.get("op")
        request_id = message.get("request_id")
        if refused is not None:
            # Dropped unread; a call is answered as a call, so a client waiting on it hears.
            if op == "call_tool" and isinstance(request_id, str):
                await self.send_json({"op": "call_tool_res", "request_id": request_id, **rate_limited_outcome(refused)})
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

    @staticmethod
    def _decode(text_data: str | None, bytes_data: bytes | None) -> tuple[dict[str, Any], str | None]:
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
            await self.send_json(
                {"op": "call_tool_res", "request_id": request_id, **error_outcome("unauthorized", reason)}
            )
        else:
            await self.reply_error("unauthorized", reason, request_id)
        if had_access:
            await self.close(code=CLOSE_UNAUTHORIZED)
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
            await self.send_json({"op": "hello_ack", "ok": False, "error": error})
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        if auth.user is None:
            await self.send_json(
                {"op": "hello_ack", "ok": False, "error": {"code": "unauthorized", "message": auth.error}}
            )
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        slot = socket_slot(self.scope)
        if slot is not None and (refusal := slot.authenticate(auth.user.pk)) is not None:
            await self.send_json({"op": "hello_ack", "ok": False, "error": {"code": "overloaded", "message": refusal}})
            await self.close(code=CLOSE_TOO_MANY)
            return
        self.auth = auth
        session_id = message.get("session_id")
        if isinstance(session_id, str) and 0 < len(session_id) <= 128:
            self.session_id = session_id
        await self.send_json({"op": "hello_ack", "ok": True, "session_id": self.session_id})

    async def op_list_tools(self, message: dict[str, Any]) -> None:
        await self.send_json({"op": "list_tools_res", "tools": tool_descriptors()})

    async def op_ping(self, message: dict[str, Any]) -> None:
        await self.send_json({"op": "pong"})

    async def op_health(self, message: dict[str, Any]) -> None:
        await self.send_json({"op": "health_res", **await health_snapshot()})

    async def op_cancel(self, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        task = self.calls.get(request_id) if isinstance(request_id, str) else None
        if task is None or not isinstance(request_id, str):
            await self.reply_error("invalid_request", f"no call in flight with request_id {request_id!r}", request_id)
            return
        # Decided without an await, so the call cannot start in between: a call running here is
        # stopped (and this socket's wait answers `cancelled`); otherwise the wait is cancelled,
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
                self.send_json({"op": "call_tool_res", "request_id": request_id, **interrupted_outcome()})
            )
            self.replies.add(reply)
            reply.add_done_callback(self.replies.discard)

    async def _serve_call(self, request_id: str, message: dict[str, Any]) -> None:
        """Answer one call_tool: from the stored result, by joining the call where it runs, or by running it.

        The call runs apart from this socket (tools_app/resume.py): when the socket drops it
        goes on for EXAI_RESUME_GRACE_S, and the client's resend of `request_id` picks it up.
        """
        deadline_s = settings.EXAI_TOOL_TIMEOUT_S + REPLY_GRACE_S
        heartbeat: asyncio.Task[None] | None = None

        def run(emit: Emit) -> Awaitable[dict[str, Any]]:
            return self._execute(request_id, message, deadline_s, emit)

        try:
            await self.send_json(
                {"op": "call_tool_ack", "request_id": request_id, "accepted": True, "timeout_s": deadline_s}
            )
            heartbeat = asyncio.ensure_future(self._heartbeat(request_id))
            outcome = await call_registry().serve(
                self._key(request_id),
                self.send_json,
                run,
                user_id=self.auth.user.pk,  # type: ignore[union-attr]
            )
            await self.send_json({"op": "call_tool_res", "request_id": request_id, **outcome})
        except asyncio.CancelledError:
            if not self.closing:
                await self.send_json({"op": "call_tool_res", "request_id": request_id, **interrupted_outcome()})
        except Exception as exc:
            # Before the call could start (its stored result or claim unreadable): retryable if a
            # service is down, else internal.
            failed = failure_outcome(
                exc, "internal error; it has been logged", failed=f"call {request_id} outside its tool"
            )
            await self.send_json({"op": "call_tool_res", "request_id": request_id, **failed})
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
            await self.send_json({"op": "progress", "request_id": request_id, "message": f"working ({elapsed:.0f}s)"})

    handlers = {
        "hello": op_hello,
        "list_tools": op_list_tools,
        "call_tool": op_call_tool,
        "cancel": op_cancel,
        "ping": op_ping,
        "health": op_health,
    }


class McpConsumer(LayerlessConsumer):
    """MCP over a WebSocket (subprotocol `mcp`): each frame one JSON-RPC message."""

    async def connect(self) -> None:
        auth: Authentication = self.scope.get("auth") or NO_AUTHENTICATION
        self.auth = auth
        backend = LocalToolBackend(auth.user) if auth.user is not None else None
        reason = auth.error or "unauthorized: connect with an `Authorization: Bearer` header or `?token=`"
        self.server = McpServer(backend, unauthorized_reason=reason)
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        # Changes to the user's threads and files, told as the session asked (resources/subscribe),
        # watched from the session's first resources request on.
        self.stop_watching: Callable[[], None] | None = None
        self.server.on_resources_used = self._watch_resources
        self.frames = frame_limiter()
        subprotocols = self.scope.get("subprotocols") or []
        await accept_into_lifecycle(self, subprotocol="mcp" if "mcp" in subprotocols else None)

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if self.stop_watching is not None:
            self.stop_watching()
        self.server.cancel_all()
        for task in list(self.tasks):
            task.cancel()

    def _watch_resources(self) -> None:
        if self.stop_watching is None and self.auth.user is not None:
            self.stop_watching = listen_for_changes(self.auth.user.pk, self._resource_changed)

    async def _resource_changed(self, uri: str, change: str) -> None:
        for note in self.server.resource_notifications(uri, change):
            await self.send_message(note)

    async def send_message(self, message: dict[str, Any]) -> None:
        if not self.closing:
            frames["out"] += 1
            await self.send(text_data=json.dumps(message))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frames["in"] += 1
        refused = frames_refused(self)
        message, error = self._decode(text_data, bytes_data)
        if refused is not None:
            # Dropped unread: a request gets the JSON-RPC error, a notification (no id) nothing.
            if error is not None or (isinstance(message, dict) and "id" in message and "method" in message):
                request_id = message.get("id") if isinstance(message, dict) else None
                data = {"retry_after_s": refused.retry_after_s}
                await self.send_message(error_response(request_id, OVERLOADED, refused.message, data))
            return
        if error is not None:
            await self.send_message(error)
            return
        # Each request runs as its own task so a long tools/call never blocks ping or cancel.
        task = asyncio.ensure_future(self._answer(message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    def _decode(text_data: str | None, bytes_data: bytes | None) -> tuple[Any, dict[str, Any] | None]:
        if (size := frame_too_large(text_data, bytes_data)) is not None:
            return None, error_response(None, INVALID_REQUEST, f"frame of {size:,} bytes is too large")
        return parse_frame(text_data if text_data is not None else bytes_data or b"")

    async def _answer(self, message: Any) -> None:
        lost_access = False
        if self.auth.user is not None and self.auth.due_for_recheck():
            self.auth = await database_sync_to_async(reauthenticate)(self.auth)
            if self.auth.user is None:
                # Revoked, or the user is gone: this request is refused, and the socket hung up.
                self.server.backend = None
                self.server.unauthorized_reason = self.auth.error or "unauthorized"
                lost_access = True
        response = await self.server.handle(message, self.send_message)
        if response is not None:
            await self.send_message(response)
        if lost_access:
            await self.close(code=CLOSE_UNAUTHORIZED)
