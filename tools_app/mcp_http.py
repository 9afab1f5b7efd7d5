"""MCP streamable HTTP on POST /mcp.

Requests carry a bearer token. The handshake revisions get an `Mcp-Session-Id`
from `initialize` (kept in the cache, so any server process can serve the next
request); 2026-07-28 requests are stateless. A `tools/call` from a client that
accepts `text/event-stream` is answered as an SSE stream carrying progress
notifications and keepalive comments, then the result; closing that stream
cancels the call and frees everything it held.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from exai_site.auth import authenticate_token, token_from_headers
from exai_site.cache import owned_key
from exai_site.origins import origin_allowed
from tools_app.mcp_protocol import (
    INVALID_REQUEST,
    OVERLOADED,
    UNAUTHORIZED,
    McpServer,
    error_response,
    parse_frame,
)
from tools_app.outages import RETRY_AFTER_S, unreachable_message, unreachable_service
from tools_app.redis_client import get_redis, redis_key
from tools_app.services import LocalToolBackend

logger = logging.getLogger(__name__)

SESSION_HEADER = "Mcp-Session-Id"
SESSION_TTL_S = 24 * 3600
# Cancellation by `notifications/cancelled` arrives on another POST of the same session —
# with REDIS_URL perhaps at another server process, which passes it on through Redis.
_in_flight: dict[str, dict[Any, asyncio.Task[Any]]] = {}
_cancel_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def _cancel_channel() -> str:
    return redis_key("mcp", "cancel")


def _listen_for_cancels() -> None:
    """This process hears cancels sent to another one (one subscription per process, started with
    its first call in a session)."""
    if not settings.REDIS_URL:
        return
    loop = asyncio.get_running_loop()
    listener = _cancel_listeners.get(loop)
    if listener is None or listener.done():
        _cancel_listeners[loop] = loop.create_task(_hear_cancels(), context=contextvars.Context())


async def _hear_cancels() -> None:
    try:
        async with get_redis().pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(_cancel_channel())
            async for message in pubsub.listen():
                try:
                    cancel = json.loads(message["data"])
                    task = _in_flight.get(cancel["session"], {}).get(cancel["request_id"])
                except (ValueError, KeyError, TypeError):
                    continue
                if task is not None:
                    task.cancel()
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.warning("stopped hearing MCP cancels from other processes; the next call listens again", exc_info=True)


async def _pass_cancel_on(session_id: str, params: Any) -> None:
    """A cancel for a call this process does not run: tell the others (the session is the caller's)."""
    if not settings.REDIS_URL or not isinstance(params, dict) or "requestId" not in params:
        return
    if params["requestId"] in _in_flight.get(session_id, {}):
        return
    payload = json.dumps({"session": session_id, "request_id": params["requestId"]})
    await get_redis().publish(_cancel_channel(), payload)


def _session_key(user_id: Any, session_id: str) -> str:
    return owned_key(f"u{user_id}", f"{settings.EXAI_REDIS_PREFIX}:mcp:session:{session_id}")


def _rpc_error(status: int, code: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse(error_response(None, code, message), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _sse(message: dict[str, Any]) -> bytes:
    return b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"


@csrf_exempt
async def mcp_endpoint(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    try:
        return await _serve(request)
    except Exception as exc:
        # The database or Redis (sessions live in the cache) is away: come back in a moment.
        if (service := unreachable_service(exc)) is None:
            raise
        return _rpc_error(503, OVERLOADED, unreachable_message(service), Retry_After=str(int(RETRY_AFTER_S)))


async def _serve(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    if request.method not in ("POST", "DELETE"):
        response = _rpc_error(405, INVALID_REQUEST, "use POST for MCP requests (this server offers no GET stream)")
        response["Allow"] = "POST, DELETE"
        return response
    if not origin_allowed(request.headers.get("Origin"), request.headers.get("Host")):
        # The spec's DNS-rebinding guard: a page on another site must not reach a local server.
        return _rpc_error(403, INVALID_REQUEST, f"origin {request.headers['Origin']!r} is not allowed")
    if "token" in request.GET:
        # An HTTP client can always send a header; a token in the URL ends up in access logs and proxies.
        message = "send the access token as `Authorization: Bearer …`, not in the URL (`?token=` is refused here)"
        return _rpc_error(401, UNAUTHORIZED, f"unauthorized: {message}", WWW_Authenticate="Bearer")
    raw_token = token_from_headers([(k.lower().encode(), v.encode()) for k, v in request.headers.items()])
    auth = await database_sync_to_async(authenticate_token)(raw_token)  # the database away: 503 (mcp_endpoint)
    if auth.user is None:
        return _rpc_error(401, UNAUTHORIZED, auth.error or "unauthorized", WWW_Authenticate="Bearer")
    if request.method == "DELETE":
        return await _terminate(request, auth.user.pk)
    try:
        body = request.body  # Django refuses more than DATA_UPLOAD_MAX_MEMORY_SIZE (= EXAI_MAX_FRAME_BYTES)
    except RequestDataTooBig:
        body = None
    if body is None or len(body) > settings.EXAI_MAX_FRAME_BYTES:
        return _rpc_error(413, INVALID_REQUEST, f"request body over {settings.EXAI_MAX_FRAME_BYTES:,} bytes")
    message, error = parse_frame(body)
    if error is not None:
        return JsonResponse(error, status=400)

    session_id = request.headers.get(SESSION_HEADER)
    version: str | None = None
    if session_id:
        session = await cache.aget(_session_key(auth.user.pk, session_id))
        if session is None or session.get("user") != auth.user.pk:
            return _rpc_error(404, INVALID_REQUEST, "unknown or expired MCP session; initialize again")
        version = session.get("version")
    server = McpServer(LocalToolBackend(auth.user), protocol_version=version)
    if session_id:
        server.in_flight = _in_flight.setdefault(session_id, {})

    is_request = isinstance(message, dict) and "id" in message
    if not is_request:
        if session_id and isinstance(message, dict) and message.get("method") == "notifications/cancelled":
            await _pass_cancel_on(session_id, message.get("params"))
        reply = await server.handle(message, _discard)
        return JsonResponse(reply, status=400) if reply is not None else HttpResponse(status=202)
    if session_id and message.get("method") == "tools/call":
        _listen_for_cancels()

    if message.get("method") == "initialize":
        session_id = uuid.uuid4().hex
    headers = {SESSION_HEADER: session_id} if session_id else {}
    wants_stream = "text/event-stream" in request.headers.get("Accept", "") and message.get("method") == "tools/call"
    if wants_stream:
        return StreamingHttpResponse(
            _stream(server, message, session_id),
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
        )
    try:
        reply = await server.handle(message, _discard)
    finally:
        _forget_if_idle(session_id)
    if message.get("method") == "initialize" and reply is not None and "result" in reply:
        await cache.aset(
            _session_key(auth.user.pk, session_id),  # type: ignore[arg-type]  # set above for initialize
            {"user": auth.user.pk, "version": server.protocol_version},
            SESSION_TTL_S,
        )
    if reply is None:
        return HttpResponse(status=202, headers=headers)
    return JsonResponse(reply, headers=headers)


async def _discard(message: dict[str, Any]) -> None:
    """Notifications have nowhere to go on a plain JSON response."""


def _forget_if_idle(session_id: str | None) -> None:
    if session_id and not _in_flight.get(session_id):
        _in_flight.pop(session_id, None)


async def _stream(server: McpServer, message: dict[str, Any], session_id: str | None) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    call = asyncio.ensure_future(server.handle(message, queue.put))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, call}, timeout=settings.EXAI_HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                yield _sse(getter.result())
                continue
            getter.cancel()
            if call in done:
                while not queue.empty():
                    yield _sse(queue.get_nowait())
                response = call.result()
                if response is not None:
                    yield _sse(response)
                return
            yield b": keepalive\n\n"
    finally:
        # Django cancels this generator when the client goes away: stop the call with it.
        call.cancel()
        _forget_if_idle(session_id)


async def _terminate(request: HttpRequest, user_id: Any) -> HttpResponse:
    session_id = request.headers.get(SESSION_HEADER) or ""
    session = await cache.aget(_session_key(user_id, session_id)) if session_id else None
    if session is None or session.get("user") != user_id:
        return _rpc_error(404, INVALID_REQUEST, "unknown MCP session")
    await cache.adelete(_session_key(user_id, session_id))
    for task in _in_flight.pop(session_id, {}).values():
        task.cancel()
    return HttpResponse(status=204)
