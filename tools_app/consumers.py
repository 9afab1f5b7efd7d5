"""WebSocket consumers: the EXAI protocol on /ws and MCP (JSON-RPC) on /mcp, each a short
dispatcher to its transport-independent session (exai_protocol.ExaiSession, mcp_protocol.McpServer)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from exai_site.auth import NO_AUTHENTICATION, Authentication, reauthenticate
from exai_site.sockets import CLOSE_UNAUTHORIZED, socket_slot
from tools_app.exai_protocol import ExaiSession, frame_too_large
from tools_app.lifecycle import CLOSE_SERVICE_RESTART, get_lifecycle
from tools_app.mcp_protocol import INVALID_REQUEST, OVERLOADED, McpServer, error_response, parse_frame
from tools_app.mcp_resources import listen_for_changes
from tools_app.observers import frames
from tools_app.ratelimit import RateLimited, frame_limiter
from tools_app.services import LocalToolBackend

logger = logging.getLogger(__name__)


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
    """The EXAI protocol on /ws: each text frame to the session (tools_app/exai_protocol.py)."""

    async def connect(self) -> None:
        self.session = ExaiSession(
            auth=self.scope.get("auth") or NO_AUTHENTICATION,
            send=self._send_json,
            close=self._close,
            slot=socket_slot(self.scope),
        )
        await accept_into_lifecycle(self)

    async def disconnect(self, code: int) -> None:
        self.session.stop()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frames["in"] += 1
        await self.session.receive(text_data, bytes_data)

    async def _send_json(self, payload: dict[str, Any]) -> None:
        frames["out"] += 1
        await self.send(text_data=json.dumps(payload))

    async def _close(self, code: int) -> None:
        await self.close(code=code)


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
        wait = self.frames.take()  # one inbound frame against EXAI_WS_FRAMES_PER_S
        refused = RateLimited("frames on this connection", round(wait, 3)) if wait else None
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
