"""MCP over JSON-RPC 2.0, independent of transport.

One `McpServer` per MCP session (a WebSocket, an HTTP session id, a stdio process)
answers the three revisions we serve: 2025-06-18 and 2025-11-25 (with the
`initialize` handshake) and 2026-07-28 (stateless: the version travels in each
request's `_meta`, and `server/discover` replaces the handshake). Tools come from a
`ToolBackend`: the local registry inside the server, or a remote EXAI server for
the stdio bridge.

Besides tools it serves prompts (one per advertised tool: tools_app/mcp_prompts.py),
argument completion, logging (`logging/setLevel`; a call's provider retries, throttle
waits and circuit changes go out as `notifications/message` at or above that level,
`info` until a client sets one) and, where the backend has them (`ResourceBackend`), the
caller's threads and files as resources with subscriptions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol, runtime_checkable

from exai_site.text import clean_decoded
from tools_app.lifecycle import get_lifecycle
from tools_app.mcp_prompts import PromptError, get_prompt, prompt_descriptors
from tools_app.mcp_resources import ResourceNotFound, ResourceTooLarge

HANDSHAKE_VERSIONS = ("2025-06-18", "2025-11-25")
MODERN_VERSIONS = ("2026-07-28",)
SUPPORTED_VERSIONS = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)
VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
SUBSCRIPTION_META_KEY = "io.modelcontextprotocol/subscriptionId"
# Resources one session may watch (resources/subscribe, or one subscriptions/listen).
MAX_SUBSCRIPTIONS = 1000
SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNSUPPORTED_PROTOCOL_VERSION = -32022
UNAUTHORIZED = -32001
RESOURCE_NOT_FOUND = -32002
# Server-defined (JSON-RPC's -32000..-32099): a rate limit refused the request; `data.retry_after_s` says when to retry.
OVERLOADED = -32029

INSTRUCTIONS = (
    "EXAI consults Moonshot Kimi, Z.ai GLM and local models. Use `chat` for a second opinion; "
    "pass the continuation_id from a reply to continue a thread. `listmodels` shows what is available."
)

Notify = Callable[[dict[str, Any]], Awaitable[None]]
Outcome = dict[str, Any]
LogCallback = Callable[[str, str, str], Awaitable[None]]  # (level, logger, message)

# RFC 5424's severities, as MCP names them, least severe first.
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
DEFAULT_LOG_LEVEL = "info"
COMPLETION_VALUES = 100


class ToolBackend(Protocol):
    async def list_tools(self) -> list[dict[str, Any]]: ...

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        request_id: str,
        on_progress: Callable[[str], Awaitable[None]] | None,
        on_log: LogCallback | None = None,
    ) -> Outcome: ...

    async def complete_argument(self, name: str, value: str) -> list[str]:
        """Values for a prompt argument named `name` that start with (or contain) `value`."""
        ...


@runtime_checkable
class ResourceBackend(Protocol):
    """A backend that has the caller's resources (the local server; the stdio bridge has none)."""

    async def list_resources(self, cursor: str | None) -> dict[str, Any]: ...

    async def resource_templates(self) -> list[dict[str, Any]]: ...

    async def read_resource(self, uri: str) -> dict[str, Any]: ...

    async def complete_resource(self, uri_template: str, variable: str, value: str) -> list[str]: ...

    def watch_resources(self, on_change: Callable[[str, str], Any]) -> Callable[[], None]:
        """Call `on_change(uri, change)` for each change to the caller's resources until stopped."""
        ...


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
    return {
        "tools": {"listChanged": False},
        "prompts": {"listChanged": False},
        "resources": {"subscribe": True, "listChanged": True},
        "completions": {},
        "logging": {},
    }


def change_notifications(
    uri: str, change: str, *, list_changed: bool, subscriptions: set[str] | frozenset[str], meta: Any = None
) -> list[dict[str, Any]]:
    """The notifications a change (`created`, `updated`, `deleted`) to `uri` makes for a listener
    that wants list changes (or not) and watches `subscriptions`; `meta` stamps each one."""
    notes: list[dict[str, Any]] = []
    if change in ("created", "deleted") and list_changed:
        notes.append({"jsonrpc": "2.0", "method": "notifications/resources/list_changed", "params": {}})
    if change in ("updated", "deleted") and uri in subscriptions:
        notes.append({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}})
    if meta is not None:
        for note in notes:
            note["params"]["_meta"] = meta
    return notes


def log_enabled(level: str, threshold: str | None) -> bool:
    return LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold or DEFAULT_LOG_LEVEL)


def log_notification(level: str, logger: str, message: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": level, "logger": logger, "data": message},
    }


def ranked(values: list[str], typed: str) -> dict[str, Any]:
    """completion/complete's answer: values starting with what was typed, then those containing it."""
    typed_lower = typed.lower()
    starts = [value for value in values if value.lower().startswith(typed_lower)]
    contains = [value for value in values if typed_lower in value.lower() and value not in starts]
    found = list(dict.fromkeys(starts + contains))
    return {"values": found[:COMPLETION_VALUES], "total": len(found), "hasMore": len(found) > COMPLETION_VALUES}


def server_version() -> str:
    try:
        return version("exai")
    except PackageNotFoundError:
        return "0+unknown"


def server_info() -> dict[str, str]:
    return {"name": "exai", "title": "EXAI", "version": server_version()}


@dataclass
class McpServer:
    backend: ToolBackend | None
    # Why the backend is missing (no valid token); every request is then refused with it.
    unauthorized_reason: str = "unauthorized: a valid access token is required"
    protocol_version: str | None = None
    in_flight: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)
    # Set by logging/setLevel; None: DEFAULT_LOG_LEVEL. The HTTP transport keeps both of these
    # in its session record, so any server process serving the session knows them.
    log_level: str | None = None
    subscriptions: set[str] = field(default_factory=set)
    # Whether the client has looked at resources at all: only then is it told the list changed,
    # and only then does the transport start watching for changes (`on_resources_used`).
    resources_seen: bool = False
    on_resources_used: Callable[[], None] | None = None

    def capabilities(self) -> dict[str, Any]:
        capabilities = server_capabilities()
        if self.backend is not None and not getattr(self.backend, "watches_resources", True):
            capabilities["resources"] = {"subscribe": False, "listChanged": False}
        return capabilities

    def resource_notifications(self, uri: str, change: str) -> list[dict[str, Any]]:
        """What this session is told unasked of a change to one of its user's resources: a
        handshake session that has looked at resources hears the list change, and what it
        subscribed to change (2026-07-28 clients opt in with subscriptions/listen instead)."""
        seen = self.resources_seen and self.protocol_version is not None
        return change_notifications(uri, change, list_changed=seen, subscriptions=self.subscriptions)

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
            # 2026-07-28 results say whether they are complete (older peers ignore the field),
            # and lists that they are this caller's own and may change at any time.
            if not modern:
                return result
            cache_hints = {"cacheScope": "private", "ttlMs": 0} if method.endswith("/list") else {}
            return {**result, **cache_hints, "resultType": "complete"}

        if method == "initialize":
            requested = params.get("protocolVersion")
            if not isinstance(requested, str):
                raise RpcError(INVALID_PARAMS, "Invalid params: protocolVersion must be a string")
            self.protocol_version = requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
            return {
                "protocolVersion": self.protocol_version,
                "capabilities": self.capabilities(),
                "serverInfo": server_info(),
                "instructions": INSTRUCTIONS,
            }
        if method == "server/discover":
            return {
                "supportedVersions": list(SUPPORTED_VERSIONS),
                "capabilities": self.capabilities(),
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
            result = {"tools": await self._tools()}
            return done(result)
        if method == "tools/call":
            return await self._call_tool(request_id, params, meta, notify, done)
        if method == "subscriptions/listen":
            return await self._listen(request_id, params, notify)
        if method == "logging/setLevel":
            level = params.get("level")
            if level not in LOG_LEVELS:
                raise RpcError(INVALID_PARAMS, f"Invalid params: level must be one of {', '.join(LOG_LEVELS)}")
            self.log_level = level
            return done({})
        if method in ("prompts/list", "prompts/get", "completion/complete"):
            return done(await self._prompts(method, params))
        if method.startswith("resources/"):
            return done(await self._resources(method, params))
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _listen(self, request_id: Any, params: dict[str, Any], notify: Notify) -> dict[str, Any] | None:
        """subscriptions/listen (2026-07-28): acknowledge what is honoured (resource list changes
        and updates; tools and prompts never change here), then stream those changes until the
        client cancels the request or goes away. The acknowledgement and every change go out
        through the request's `notify`, stamped with its id."""
        wanted = params.get("notifications")
        if not isinstance(wanted, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: subscriptions/listen needs a notifications filter")
        uris = wanted.get("resourceSubscriptions") or []
        if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
            raise RpcError(INVALID_PARAMS, "Invalid params: resourceSubscriptions must be a list of URIs")
        if len(uris) > MAX_SUBSCRIPTIONS:
            raise RpcError(INVALID_PARAMS, f"Invalid params: at most {MAX_SUBSCRIPTIONS} resourceSubscriptions")
        if request_id in self.in_flight:
            raise RpcError(INVALID_REQUEST, f"Invalid Request: request id {request_id!r} is already in flight")
        backend = self.backend
        watching = isinstance(backend, ResourceBackend) and getattr(backend, "watches_resources", True)
        honored: dict[str, Any] = {}
        if watching and wanted.get("resourcesListChanged") is True:
            honored["resourcesListChanged"] = True
        if watching and uris:
            honored["resourceSubscriptions"] = list(dict.fromkeys(uris))
        meta = {SUBSCRIPTION_META_KEY: request_id}
        ack = {"notifications": honored, "_meta": meta}
        await notify({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": ack})
        if not honored:
            return {"_meta": meta, "resultType": "complete"}  # nothing to listen for: end at once
        changes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

        async def on_change(uri: str, change: str) -> None:
            changes.put_nowait((uri, change))

        assert isinstance(backend, ResourceBackend)
        stop = backend.watch_resources(on_change)
        subscribed = frozenset(honored.get("resourceSubscriptions", ()))
        listening = asyncio.current_task()
        assert listening is not None
        self.in_flight[request_id] = listening  # type: ignore[assignment]  # notifications/cancelled ends it
        try:
            while True:
                uri, change = await changes.get()
                for note in change_notifications(
                    uri, change, list_changed="resourcesListChanged" in honored, subscriptions=subscribed, meta=meta
                ):
                    await notify(note)
        except asyncio.CancelledError:
            if get_lifecycle().draining:
                return {"_meta": meta, "resultType": "complete"}  # a graceful end: the server stops
            raise
        finally:
            stop()
            self.in_flight.pop(request_id, None)

    async def _tools(self) -> list[dict[str, Any]]:
        assert self.backend is not None
        try:
            return await self.backend.list_tools()
        except Exception as exc:
            raise RpcError(INTERNAL_ERROR, f"tools are unavailable: {exc}") from None

    async def _prompts(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.backend is not None
        if method == "prompts/list":
            return {"prompts": prompt_descriptors(await self._tools())}
        if method == "prompts/get":
            name, arguments = params.get("name"), params.get("arguments") or {}
            if not isinstance(name, str) or not isinstance(arguments, dict):
                raise RpcError(INVALID_PARAMS, "Invalid params: prompts/get needs a name and an arguments object")
            try:
                return get_prompt(await self._tools(), name, arguments)
            except PromptError as exc:
                raise RpcError(INVALID_PARAMS, f"Invalid params: {exc}") from None
        ref, argument = params.get("ref"), params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict) or not isinstance(argument.get("name"), str):
            raise RpcError(INVALID_PARAMS, "Invalid params: completion/complete needs a ref and an argument name")
        value = argument.get("value")
        typed = value if isinstance(value, str) else ""
        values: list[str] = []
        # An unknown prompt or template completes to nothing (the spec lets completion be minimal).
        if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            known = {prompt["name"]: prompt for prompt in prompt_descriptors(await self._tools())}
            prompt = known.get(ref["name"])
            if prompt is not None and any(arg["name"] == argument["name"] for arg in prompt["arguments"]):
                values = await self.backend.complete_argument(argument["name"], typed)
        elif ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
            if isinstance(self.backend, ResourceBackend):
                values = await self.backend.complete_resource(ref["uri"], argument["name"], typed)
        else:
            raise RpcError(
                INVALID_PARAMS, "Invalid params: ref.type must be ref/prompt (with a name) or ref/resource (with a uri)"
            )
        return {"completion": ranked(values, typed)}

    async def _resources(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        backend = self.backend
        if not isinstance(backend, ResourceBackend):
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method} (this server has no resources)")
        if not self.resources_seen and self.on_resources_used is not None:
            self.on_resources_used()
        self.resources_seen = True
        if method == "resources/list":
            cursor = params.get("cursor")
            try:
                return await backend.list_resources(cursor if isinstance(cursor, str) else None)
            except ValueError:
                raise RpcError(INVALID_PARAMS, "Invalid params: unknown cursor") from None
        if method == "resources/templates/list":
            return {"resourceTemplates": await backend.resource_templates()}
        uri = params.get("uri")
        if not isinstance(uri, str) or not uri:
            raise RpcError(INVALID_PARAMS, f"Invalid params: {method} needs a uri")
        if method == "resources/read":
            try:
                return await backend.read_resource(uri)
            except ResourceNotFound:
                raise RpcError(RESOURCE_NOT_FOUND, "Resource not found", {"uri": uri}) from None
            except ResourceTooLarge as exc:
                raise RpcError(INVALID_PARAMS, f"Invalid params: {exc}", {"uri": uri}) from None
        if method == "resources/subscribe":
            # Any URI may be watched (a thread may be deleted and its URI watched for nothing);
            # only this user's changes are ever announced. A session holds a bounded number.
            if uri not in self.subscriptions and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                raise RpcError(
                    INVALID_PARAMS,
                    f"Invalid params: a session watches at most {MAX_SUBSCRIPTIONS} resources; unsubscribe some first",
                )
            self.subscriptions.add(uri)
            return {}
        if method == "resources/unsubscribe":
            self.subscriptions.discard(uri)
            return {}
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

        async def on_log(level: str, logger: str, message: str) -> None:
            if log_enabled(level, self.log_level):
                await notify(log_notification(level, logger, message))

        task = asyncio.ensure_future(
            self.backend.call_tool(name, arguments, request_id=str(request_id), on_progress=on_progress, on_log=on_log)
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
