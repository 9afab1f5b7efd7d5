"""An asyncio client for the EXAI WebSocket protocol, used by `mcp_stdio` and the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import websockets

TextCallback = Callable[[str], Awaitable[None]]
# Replies that answer the oldest pending request of their kind (they carry no request_id).
_FIFO_REPLIES = {"list_tools_res": "list_tools", "pong": "ping", "health_res": "health"}


class ExaiClientError(Exception):
    pass


class _Call:
    def __init__(self, on_progress: TextCallback | None, on_stream: TextCallback | None) -> None:
        self.result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.on_progress = on_progress
        self.on_stream = on_stream


class ExaiClient:
    def __init__(self, url: str, token: str, *, session_id: str | None = None, open_timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.session_id = session_id
        self.open_timeout = open_timeout
        self._socket: Any = None
        self._reader: asyncio.Task[None] | None = None
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
        return self._socket is not None and self._reader is not None and not self._reader.done()

    async def connect(self) -> None:
        try:
            self._socket = await websockets.connect(
                self.url, open_timeout=self.open_timeout, max_size=None, compression=None
            )
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            raise ExaiClientError(f"cannot reach EXAI server at {self.url}: {exc}") from exc
        hello: dict[str, Any] = {"op": "hello", "token": self.token}
        if self.session_id:
            hello["session_id"] = self.session_id
        await self._socket.send(json.dumps(hello))
        ack = json.loads(await self._socket.recv())
        if not ack.get("ok"):
            await self._socket.close()
            raise ExaiClientError(f"EXAI server refused the token: {ack.get('error', {}).get('message')}")
        self.session_id = ack["session_id"]
        self._reader = asyncio.ensure_future(self._read())

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        error: Exception = ExaiClientError("connection to the EXAI server closed")
        try:
            async for raw in self._socket:
                self._dispatch(json.loads(raw))
        except websockets.WebSocketException as exc:
            error = ExaiClientError(f"connection to the EXAI server lost: {exc}")
        finally:
            for call in self._calls.values():
                if not call.result.done():
                    call.result.set_exception(error)
            for queue in self._waiting.values():
                for future in queue:
                    if not future.done():
                        future.set_exception(error)

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
        if op == "call_tool_res" or op == "error":
            if not call.result.done():
                call.result.set_result(message)
        elif op == "progress" and call.on_progress is not None:
            self._spawn(call.on_progress(message.get("message", "")))
        elif op == "stream" and call.on_stream is not None:
            self._spawn(call.on_stream(message.get("delta", "")))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        # Callbacks run as tasks so a slow one never stalls the reader; keep them referenced.
        task = asyncio.ensure_future(coroutine)
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _simple(self, op: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[op].append(future)
        await self._socket.send(json.dumps({"op": op}))
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
    ) -> dict[str, Any]:
        """Call a tool and return the `call_tool_res` frame; cancelling this cancels the call."""
        request_id = request_id or self.new_request_id()
        call = self._calls[request_id] = _Call(on_progress, on_stream)
        try:
            await self._socket.send(
                json.dumps({"op": "call_tool", "request_id": request_id, "name": name, "arguments": arguments})
            )
            return await call.result
        except asyncio.CancelledError:
            if self.connected:
                with contextlib.suppress(websockets.WebSocketException):
                    await self._socket.send(json.dumps({"op": "cancel", "request_id": request_id}))
            raise
        finally:
            self._calls.pop(request_id, None)
