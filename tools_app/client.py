"""An asyncio client for the EXAI WebSocket protocol, used by `mcp_stdio`, the benchmarks and baselines.

It reconnects by itself: when the connection drops (a restart closes it with 1012),
it retries with exponential backoff and full jitter, says `hello` again with the same
`session_id`, and re-sends every call still unanswered under its `request_id`. The
server answers a call it already finished from its idempotency store, and attaches the
resend to a call still running (for EXAI_RESUME_GRACE_S after the drop), instead of
running it again; a call cut short by a restart (`shutting_down`) runs on the new
server. websockets' keepalive pings detect a dead peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import websockets

logger = logging.getLogger(__name__)

TextCallback = Callable[[str], Awaitable[None]]
# Replies that answer the oldest pending request of their kind (they carry no request_id).
_FIFO_REPLIES = {"list_tools_res": "list_tools", "pong": "ping", "health_res": "health"}
CLOSE_UNAUTHORIZED = 4401


class ExaiClientError(Exception):
    pass


class _Call:
    def __init__(
        self,
        name: str,
        arguments: dict[str, Any],
        on_progress: TextCallback | None,
        on_stream: TextCallback | None,
        on_reasoning: TextCallback | None,
    ) -> None:
        self.name = name
        self.arguments = arguments
        self.result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.on_progress = on_progress
        self.on_stream = on_stream
        self.on_reasoning = on_reasoning


class ExaiClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        session_id: str | None = None,
        open_timeout: float = 10.0,
        reconnect: bool = True,
        reconnect_timeout_s: float = 60.0,
        max_backoff_s: float = 5.0,
        ping_interval_s: float = 10.0,
    ) -> None:
        self.url = url
        self.token = token
        self.session_id = session_id or uuid.uuid4().hex
        self.open_timeout = open_timeout
        self.reconnect = reconnect
        self.reconnect_timeout_s = reconnect_timeout_s
        self.max_backoff_s = max_backoff_s
        self.ping_interval_s = ping_interval_s
        self.reconnects = 0
        self._socket: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._calls: dict[str, _Call] = {}
        self._waiting: dict[str, deque[asyncio.Future[dict[str, Any]]]] = {op: deque() for op in _FIFO_REPLIES.values()}
        self._callbacks: set[asyncio.Future[None]] = set()
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:12]

    async def __aenter__(self) -> ExaiClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def connect(self) -> None:
        await self._open()
        self._runner = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Close for good: calls still running are cancelled (a dropped connection would leave
        them running on the server, for a reconnect, for EXAI_RESUME_GRACE_S)."""
        self._closing = True
        if self._socket is not None:
            for request_id in list(self._calls):
                with contextlib.suppress(websockets.WebSocketException):
                    await self._socket.send(json.dumps({"op": "cancel", "request_id": request_id}))
            await self._socket.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _open(self) -> None:
        try:
            socket = await websockets.connect(
                self.url,
                open_timeout=self.open_timeout,
                max_size=None,
                compression=None,
                ping_interval=self.ping_interval_s,
                ping_timeout=self.ping_interval_s,
            )
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            raise ExaiClientError(f"cannot reach EXAI server at {self.url}: {exc}") from exc
        try:
            await socket.send(json.dumps({"op": "hello", "token": self.token, "session_id": self.session_id}))
            ack = json.loads(await socket.recv())
        except websockets.WebSocketException as exc:
            raise ExaiClientError(f"EXAI server at {self.url} closed during hello: {exc}") from exc
        if not ack.get("ok"):
            await socket.close()
            raise ExaiClientError(f"EXAI server refused the token: {ack.get('error', {}).get('message')}")
        self.session_id = ack["session_id"]
        self._socket = socket

    async def _run(self) -> None:
        """Read replies; on a lost connection reconnect and re-send what is unanswered."""
        while True:
            close_code = None
            try:
                async for raw in self._socket:
                    self._dispatch(json.loads(raw))
                close_code = self._socket.close_code
            except websockets.ConnectionClosed as exc:
                close_code = exc.rcvd.code if exc.rcvd else None
            if self._closing:
                return
            self._fail_fifo(ExaiClientError("connection to the EXAI server was lost"))
            if not self.reconnect or close_code == CLOSE_UNAUTHORIZED:
                self._fail_calls(ExaiClientError(f"connection to the EXAI server closed ({close_code})"))
                return
            try:
                await self._reopen()
            except ExaiClientError as exc:
                self._fail_calls(exc)
                return
            for request_id, call in list(self._calls.items()):
                await self._send_call(request_id, call)

    async def _reopen(self) -> None:
        """Reconnect with exponential backoff and full jitter, until reconnect_timeout_s has passed."""
        give_up = time.monotonic() + self.reconnect_timeout_s
        for attempt in itertools.count():
            await asyncio.sleep(random.uniform(0, min(self.max_backoff_s, 0.1 * 2**attempt)))
            try:
                await self._open()
                self.reconnects += 1
                return
            except ExaiClientError as exc:
                if "refused the token" in str(exc) or time.monotonic() > give_up:
                    raise
                logger.info("reconnecting to %s (attempt %d): %s", self.url, attempt + 1, exc)

    def _fail_fifo(self, error: Exception) -> None:
        for queue in self._waiting.values():
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_exception(error)

    def _fail_calls(self, error: Exception) -> None:
        for call in self._calls.values():
            if not call.result.done():
                call.result.set_exception(error)

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op in _FIFO_REPLIES:
            queue = self._waiting[_FIFO_REPLIES[op]]
            if queue:
                queue.popleft().set_result(message)
            return
        call = self._calls.get(message.get("request_id", ""))
        if call is None:
            return
        if op in ("call_tool_res", "error"):
            shutting_down = message.get("error", {}).get("code") == "shutting_down"
            if shutting_down and self.reconnect:
                return  # unanswered: it is re-sent to the server we reconnect to
            if not call.result.done():
                call.result.set_result(message)
        elif op == "progress" and call.on_progress is not None:
            self._spawn(call.on_progress(message.get("message", "")))
        elif op == "stream":
            # A thinking model's reasoning streams apart from the answer (`kind: reasoning`).
            handler = call.on_reasoning if message.get("kind") == "reasoning" else call.on_stream
            if handler is not None:
                self._spawn(handler(message.get("delta", "")))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        # Callbacks run as tasks so a slow one never stalls the reader; keep them referenced.
        task = asyncio.ensure_future(coroutine)
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _send(self, payload: dict[str, Any]) -> None:
        if self._socket is None:
            raise ExaiClientError("not connected; call connect() first")
        await self._socket.send(json.dumps(payload))

    async def _send_call(self, request_id: str, call: _Call) -> None:
        payload = {"op": "call_tool", "request_id": request_id, "name": call.name, "arguments": call.arguments}
        try:
            await self._send(payload)
        except websockets.ConnectionClosed:
            if not self.reconnect:
                raise ExaiClientError("connection to the EXAI server was lost") from None
            # The reader reconnects and re-sends every unanswered call, this one included.

    async def _simple(self, op: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[op].append(future)
        try:
            await self._send({"op": op})
        except websockets.ConnectionClosed as exc:
            self._waiting[op].remove(future)
            raise ExaiClientError("connection to the EXAI server was lost") from exc
        return await future

    async def list_tools(self) -> list[dict[str, Any]]:
        return (await self._simple("list_tools"))["tools"]

    async def ping(self) -> None:
        await self._simple("ping")

    async def health(self) -> dict[str, Any]:
        return await self._simple("health")

    def new_request_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        request_id: str | None = None,
        on_progress: TextCallback | None = None,
        on_stream: TextCallback | None = None,
        on_reasoning: TextCallback | None = None,
    ) -> dict[str, Any]:
        """Call a tool and return the `call_tool_res` frame; cancelling this cancels the call.

        `on_stream` gets the answer as it streams, `on_reasoning` a thinking model's reasoning.
        """
        request_id = request_id or self.new_request_id()
        call = self._calls[request_id] = _Call(name, arguments, on_progress, on_stream, on_reasoning)
        try:
            await self._send_call(request_id, call)
            return await call.result
        except asyncio.CancelledError:
            with contextlib.suppress(websockets.WebSocketException, ExaiClientError):
                await self._send({"op": "cancel", "request_id": request_id})
            raise
        finally:
            self._calls.pop(request_id, None)
