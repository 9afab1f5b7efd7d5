"""MCP over JSON-RPC 2.0, independent of transport.

One `McpServer` per MCP session (a WebSocket, an HTTP session id, a stdio process)
answers the three revisions we serve: 2025-06-18 and 2025-11-25 (with the
`initialize` handshake) and 2026-07-28 (stateless: the version travels in each
request's `_meta`, and `server/discover` replaces the handshake). Tools come from a
`ToolBackend`: the local registry inside the server, or a remote EXAI server for
the stdio bridge.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from exai_site.text import clean_decoded
from tools_app.lifecycle import get_lifecycle

HANDSHAKE_VERSIONS = ("2025-06-18", "2025-11-25")
MODERN_VERSIONS = ("2026-07-28",)
SUPPORTED_VERSIONS = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)
VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNSUPPORTED_PROTOCOL_VERSION = -32022
UNAUTHORIZED = -32001
# Server-defined (JSON-RPC's -32000..-32099): a rate limit refused the request; `data.retry_after_s` says when to retry.
OVERLOADED = -32029

INSTRUCTIONS = (
    "EXAI consults Moonshot Kimi, Z.ai GLM and local models. Use `chat` for a second opinion; "
    "pass the continuation_id from a reply to continue a thread. `listmodels` shows what is available."
)

Notify = Callable[[dict[str, Any]], Awaitable[None]]
Outcome = dict[str, Any]


class ToolBackend(Protocol):
    async def list_tools(self) -> list[dict[str, Any]]: ...

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        request_id: str,
        on_progress: Callable[[str], Awaitable[None]] | None,
    ) -> Outcome: ...


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def parse_frame(raw: str | bytes) -> tuple[Any, dict[str, Any] | None]:
    """Decode one frame: (message, None), or (None, the JSON-RPC error to send back)."""
    try:
        return clean_decoded(json.loads(raw), raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, error_response(None, PARSE_ERROR, f"Parse error: {exc}")
    except RecursionError:
        return None, error_response(None, PARSE_ERROR, "Parse error: nested too deeply")


def _valid_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def server_capabilities() -> dict[str, Any]:
    return {"tools": {"listChanged": False}}


def server_info() -> dict[str, str]:
    from tools_app.tools.version import server_version

    return {"name": "exai", "title": "EXAI", "version": server_version()}


@dataclass
class McpServer:
    backend: ToolBackend | None
    # Why the backend is missing (no valid token); every request is then refused with it.
    unauthorized_reason: str = "unauthorized: a valid access token is required"
    protocol_version: str | None = None
    in_flight: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)

    async def handle(self, message: Any, notify: Notify) -> dict[str, Any] | None:
        """Answer one decoded message; None for notifications and cancelled calls."""
        if isinstance(message, list):
            return error_response(None, INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported")
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return error_response(None, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object")
        method = message.get("method")
        if "id" not in message:
            if isinstance(method, str):
                self._notification(method, message.get("params"))
            return None
        request_id = message["id"]
        if not _valid_id(request_id):
            return error_response(None, INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
        if not isinstance(method, str):
            return error_response(request_id, INVALID_REQUEST, "Invalid Request: method must be a string")
        params = message.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return error_response(request_id, INVALID_PARAMS, "Invalid params: params must be an object")
        try:
            result = await self._dispatch(request_id, method, params, notify)
        except RpcError as exc:
            return error_response(request_id, exc.code, exc.message, exc.data)
        if result is None:
            return None
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _notification(self, method: str, params: Any) -> None:
        if method == "notifications/cancelled" and isinstance(params, dict):
            task = self.in_flight.get(params.get("requestId"))
            if task is not None:
                task.cancel()

    def cancel_all(self) -> None:
        for task in list(self.in_flight.values()):
            task.cancel()

    async def _dispatch(self, request_id: Any, method: str, params: dict[str, Any], notify: Notify) -> Any:
        raw_meta = params.get("_meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        modern = meta.get(VERSION_META_KEY)
        if modern is not None and modern not in MODERN_VERSIONS:
            raise RpcError(
                UNSUPPORTED_PROTOCOL_VERSION,
                f"Unsupported protocol version: {modern}",
                {"supported": list(SUPPORTED_VERSIONS), "requested": modern},
            )

        def done(result: dict[str, Any]) -> dict[str, Any]:
            # 2026-07-28 results say whether they are complete; older peers ignore the field.
            return {**result, "resultType": "complete"} if modern else result

        if method == "initialize":
            requested = params.get("protocolVersion")
            if not isinstance(requested, str):
                raise RpcError(INVALID_PARAMS, "Invalid params: protocolVersion must be a string")
            self.protocol_version = requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
            return {
                "protocolVersion": self.protocol_version,
                "capabilities": server_capabilities(),
                "serverInfo": server_info(),
                "instructions": INSTRUCTIONS,
            }
        if method == "server/discover":
            return {
                "supportedVersions": list(SUPPORTED_VERSIONS),
                "capabilities": server_capabilities(),
                "instructions": INSTRUCTIONS,
                "cacheScope": "public",
                "ttlMs": 0,
                "resultType": "complete",
                "_meta": {SERVER_INFO_META_KEY: server_info()},
            }
        if method == "ping":
            return done({})
        if self.backend is None:
            raise RpcError(UNAUTHORIZED, self.unauthorized_reason)
        if method == "tools/list":
            try:
                tools = await self.backend.list_tools()
            except Exception as exc:
                raise RpcError(INTERNAL_ERROR, f"tools are unavailable: {exc}") from None
            result = {"tools": tools}
            return {**result, "cacheScope": "private", "ttlMs": 0, "resultType": "complete"} if modern else result
        if method == "tools/call":
            return await self._call_tool(request_id, params, meta, notify, done)
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _call_tool(
        self,
        request_id: Any,
        params: dict[str, Any],
        meta: dict[str, Any],
        notify: Notify,
        done: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any] | None:
        assert self.backend is not None
        name = params.get("name")
        arguments = params.get("arguments", {})
        if not isinstance(name, str) or not name:
            raise RpcError(INVALID_PARAMS, "Invalid params: tools/call needs a tool name")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: arguments must be an object")
        if request_id in self.in_flight:
            raise RpcError(INVALID_REQUEST, f"Invalid Request: request id {request_id!r} is already in flight")
        token = meta.get("progressToken")
        progress_count = 0

        async def on_progress(message: str) -> None:
            nonlocal progress_count
            if token is None:
                return
            progress_count += 1
            await notify(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": progress_count, "message": message},
                }
            )

        task = asyncio.ensure_future(
            self.backend.call_tool(name, arguments, request_id=str(request_id), on_progress=on_progress)
        )
        self.in_flight[request_id] = task
        try:
            outcome = await task
        except asyncio.CancelledError:
            if not task.cancelled() or _current_task_cancelling():
                raise
            if not get_lifecycle().draining:
                return None  # cancelled by notifications/cancelled: the spec says send nothing
            outcome = {"error": {"code": "shutting_down", "message": "the server is restarting; retry in a moment"}}
        finally:
            self.in_flight.pop(request_id, None)
        error = outcome.get("error")
        if error is not None:
            if error.get("code") == "unknown_tool":
                raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}", {"code": "unknown_tool"})
            if error.get("code") == "cancelled":
                return None
            return done(
                {
                    "content": [{"type": "text", "text": f"{error['code']}: {error['message']}"}],
                    "isError": True,
                    "_meta": {"error": error},
                }
            )
        outputs = outcome.get("outputs") or []
        metadata = outputs[0].get("metadata", {}) if outputs else {}
        return done(
            {
                "content": [{"type": "text", "text": item.get("text", "")} for item in outputs],
                "isError": False,
                "_meta": metadata,
            }
        )


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task and task.cancelling())
