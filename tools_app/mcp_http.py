"""MCP streamable HTTP on /mcp.

Requests carry a bearer token. The handshake revisions get an `Mcp-Session-Id`
from `initialize` (kept in the cache with the session's log level and resource
subscriptions, so any server process can serve the next request); 2026-07-28
requests are stateless.

A `tools/call` from a client that accepts `text/event-stream` is answered as an SSE
stream: a priming event (an id, empty data, and `retry`), then progress and log
notifications and keepalive comments, then the result, each event with an id. The
stream is resumable (tools_app/mcp_streams.py): a client that lost it sends
`GET /mcp` with `Last-Event-ID` and gets what it missed, then the rest; the call goes
on meanwhile, and is cancelled only when nobody comes back within
EXAI_MCP_RESUME_GRACE_S (or on `notifications/cancelled`, or DELETE of the session).

`GET /mcp` without `Last-Event-ID`, in a session, is the session's own stream of
server notifications: `notifications/resources/updated` for the resources it
subscribed to and `notifications/resources/list_changed`, with keepalive comments.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
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
from exai_site.outages import RETRY_AFTER_S, unreachable_message, unreachable_service
from tools_app.mcp_protocol import (
    INVALID_REQUEST,
    OVERLOADED,
    UNAUTHORIZED,
    McpServer,
    change_notifications,
    error_response,
    parse_frame,
)
from tools_app.mcp_resources import listen_for_changes
from tools_app.mcp_streams import UnknownStream, event_id, get_event_log, parse_event_id
from tools_app.redis_client import channel_messages, get_redis, redis_key
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
        async for data in channel_messages(_cancel_channel()):
            try:
                cancel = json.loads(data)
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


def _session_state(server: McpServer) -> dict[str, Any]:
    """What a session keeps between requests besides its user and version."""
    return {"log_level": server.log_level, "subscriptions": sorted(server.subscriptions)}


def _rpc_error(status: int, code: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse(error_response(None, code, message), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _sse(message: dict[str, Any], ident: str | None = None) -> bytes:
    head = f"id: {ident}\n".encode() if ident is not None else b""
    return head + b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"


def _stream_owner(user_id: Any, session_id: str | None) -> str:
    return f"{user_id}:{session_id or ''}"


@csrf_exempt
async def mcp_endpoint(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    try:
        return await _serve(request)
    except Exception as exc:
        # The database or Redis (sessions live in the cache) is away: come back in a moment.
        if (service := unreachable_service(exc)) is None:
            raise
        logger.warning("MCP request answered 503: %s is unreachable (%s: %s)", service, type(exc).__name__, exc)
        return _rpc_error(503, OVERLOADED, unreachable_message(service), Retry_After=str(int(RETRY_AFTER_S)))


async def _serve(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    if request.method not in ("POST", "GET", "DELETE"):
        response = _rpc_error(405, INVALID_REQUEST, "use POST for requests, GET for a stream, DELETE to end a session")
        response["Allow"] = "POST, GET, DELETE"
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
    if request.method == "GET":
        return await _get_stream(request, auth.user)
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
    session: dict[str, Any] | None = None
    if session_id:
        session = await cache.aget(_session_key(auth.user.pk, session_id))
        if session is None or session.get("user") != auth.user.pk:
            return _rpc_error(404, INVALID_REQUEST, "unknown or expired MCP session; initialize again")
    server = McpServer(
        LocalToolBackend(auth.user),
        protocol_version=(session or {}).get("version"),
        log_level=(session or {}).get("log_level"),
        subscriptions=set((session or {}).get("subscriptions", ())),
    )
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
    accepts_sse = "text/event-stream" in request.headers.get("Accept", "")
    if message.get("method") == "subscriptions/listen":
        if not accepts_sse:
            return _rpc_error(406, INVALID_REQUEST, "subscriptions/listen answers with text/event-stream; accept it")
        return StreamingHttpResponse(
            _listen_stream(server, message, session_id),
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
        )
    if accepts_sse and message.get("method") == "tools/call":
        stream_id = uuid.uuid4().hex
        await get_event_log().open(stream_id, _stream_owner(auth.user.pk, session_id))
        return StreamingHttpResponse(
            _stream(server, message, session_id, stream_id),
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
        )
    before = _session_state(server)
    try:
        reply = await server.handle(message, _discard)
    finally:
        _forget_if_idle(session_id)
    if message.get("method") == "initialize" and reply is not None and "result" in reply:
        await cache.aset(
            _session_key(auth.user.pk, session_id),  # type: ignore[arg-type]  # set above for initialize
            {"user": auth.user.pk, "version": server.protocol_version, **_session_state(server)},
            SESSION_TTL_S,
        )
    elif session is not None and _session_state(server) != before:
        # logging/setLevel or a (un)subscription: the session's other requests and streams see it.
        key = _session_key(auth.user.pk, session_id)  # type: ignore[arg-type]  # a session has an id
        await cache.aset(key, {**session, **_session_state(server)}, SESSION_TTL_S)
    if reply is None:
        return HttpResponse(status=202, headers=headers)
    return JsonResponse(reply, headers=headers)


async def _discard(message: dict[str, Any]) -> None:
    """Notifications have nowhere to go on a plain JSON response."""


def _forget_if_idle(session_id: str | None) -> None:
    if session_id and not _in_flight.get(session_id):
        _in_flight.pop(session_id, None)


class _CallStream:
    """One tools/call's events: numbered, kept in the event log in order (by one writer task,
    so the live client never waits for the log), and handed to the live client if any."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.seq = 0
        self.live: asyncio.Queue[tuple[int, dict[str, Any] | None]] | None = asyncio.Queue()
        self._kept: asyncio.Queue[tuple[int, dict[str, Any] | None]] = asyncio.Queue()
        self.keeper = asyncio.get_running_loop().create_task(self._keep(), context=contextvars.Context())

    def put(self, message: dict[str, Any] | None) -> None:
        self.seq += 1
        if self.live is not None:
            self.live.put_nowait((self.seq, message))
        self._kept.put_nowait((self.seq, message))

    async def _keep(self) -> None:
        log = get_event_log()
        while True:
            seq, message = await self._kept.get()
            try:
                await log.append(self.stream_id, seq, message)
            except Exception:
                logger.warning("could not keep event %s of MCP stream %s", seq, self.stream_id, exc_info=True)
            if message is None:
                return


async def _stream(
    server: McpServer, message: dict[str, Any], session_id: str | None, stream_id: str
) -> AsyncIterator[bytes]:
    events = _CallStream(stream_id)

    async def notify(note: dict[str, Any]) -> None:
        events.put(note)

    async def run() -> None:
        try:
            response = await server.handle(message, notify)
            if response is not None:
                events.put(response)
        finally:
            events.put(None)  # the end, whatever happened
            _forget_if_idle(session_id)

    call = asyncio.get_running_loop().create_task(run())
    _track(call)
    live = events.live
    assert live is not None
    try:
        # The priming event: an id to resume from, before anything else, and how long to wait.
        yield f"id: {event_id(stream_id, 0)}\nretry: {settings.EXAI_MCP_SSE_RETRY_MS}\ndata: \n\n".encode()
        while True:
            try:
                seq, note = await asyncio.wait_for(live.get(), timeout=settings.EXAI_HEARTBEAT_S)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if note is None:
                return
            yield _sse(note, event_id(stream_id, seq))
    finally:
        events.live = None
        if not call.done():
            # The client went away (Django cancels this generator): the call goes on for a
            # client that resumes the stream, and stops when none does.
            loop = asyncio.get_running_loop()
            _track(loop.create_task(_stop_unless_resumed(call, stream_id), context=contextvars.Context()))


async def _listen_stream(server: McpServer, message: dict[str, Any], session_id: str | None) -> AsyncIterator[bytes]:
    """A subscriptions/listen stream: its changes as they come, keepalives between; no replay
    (a client that lost it listens again and refetches), so it ends with its connection."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def run() -> None:
        try:
            response = await server.handle(message, queue.put)
            if response is not None:
                queue.put_nowait(response)
        finally:
            queue.put_nowait(None)
            _forget_if_idle(session_id)

    listening = asyncio.get_running_loop().create_task(run())
    try:
        while True:
            try:
                note = await asyncio.wait_for(queue.get(), timeout=settings.EXAI_HEARTBEAT_S)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if note is None:
                return
            yield _sse(note)
    finally:
        listening.cancel()


_running: set[asyncio.Task[Any]] = set()


def _track(task: asyncio.Task[Any]) -> None:
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _stop_unless_resumed(call: asyncio.Task[None], stream_id: str) -> None:
    log = get_event_log()
    grace = settings.EXAI_MCP_RESUME_GRACE_S
    while not call.done():
        await asyncio.wait({call}, timeout=grace)
        if call.done():
            return
        try:
            resumed = await log.read_lately(stream_id)
        except Exception:
            resumed = False  # the log is away: nobody can resume it either
        if not resumed:
            logger.info("MCP stream %s was not resumed within %gs; its call is cancelled", stream_id, grace)
            call.cancel()
            return


def _accepts_sse(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/event-stream" in accept or "*/*" in accept


async def _get_stream(request: HttpRequest, user: Any) -> HttpResponse | StreamingHttpResponse:
    if not _accepts_sse(request):
        return _rpc_error(406, INVALID_REQUEST, "GET /mcp answers with text/event-stream; accept it")
    session_id = request.headers.get(SESSION_HEADER)
    session = await cache.aget(_session_key(user.pk, session_id)) if session_id else None
    if session_id and (session is None or session.get("user") != user.pk):
        return _rpc_error(404, INVALID_REQUEST, "unknown or expired MCP session; initialize again")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    last = request.headers.get("Last-Event-ID")
    if last is not None:
        parsed = parse_event_id(last)
        if parsed is None:
            return _rpc_error(400, INVALID_REQUEST, f"Last-Event-ID {last!r} is not an event id this server sent")
        stream_id, after = parsed
        replay = get_event_log().read(stream_id, _stream_owner(user.pk, session_id), after)
        try:
            first = await anext(replay)
        except UnknownStream:
            return _rpc_error(404, INVALID_REQUEST, "no such stream to resume (it ended long ago, or is not yours)")
        except StopAsyncIteration:
            first = None
            replay = _nothing()
        return StreamingHttpResponse(
            _resumed(stream_id, first, replay), content_type="text/event-stream", headers=headers
        )
    if session is None or not session_id:
        return _rpc_error(400, INVALID_REQUEST, "GET /mcp needs an Mcp-Session-Id (or a Last-Event-ID to resume)")
    return StreamingHttpResponse(
        _notifications(user.pk, session_id),
        content_type="text/event-stream",
        headers=headers,
    )


async def _nothing() -> AsyncIterator[Any]:
    return
    yield


async def _resumed(stream_id: str, first: Any, replay: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    log = get_event_log()
    hold_s = settings.EXAI_MCP_RESUME_GRACE_S + settings.EXAI_HEARTBEAT_S * 2
    await log.reading(stream_id, hold_s)
    # The mark that a reader is back lasts hold_s: renewed a third of that in, not per event
    # (with Redis each renewal is a round trip).
    renewed = time.monotonic()
    yield f"retry: {settings.EXAI_MCP_SSE_RETRY_MS}\n\n".encode()
    event = first
    try:
        while True:
            if event is None:
                yield b": keepalive\n\n"
            elif event.message is None:
                return
            else:
                yield _sse(event.message, event_id(stream_id, event.seq))
            if time.monotonic() - renewed >= hold_s / 3:
                await log.reading(stream_id, hold_s)
                renewed = time.monotonic()
            try:
                event = await anext(replay)
            except StopAsyncIteration:
                return
    finally:
        await replay.aclose()  # type: ignore[attr-defined]


async def _notifications(user_id: Any, session_id: str) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def on_change(uri: str, change: str) -> None:
        queue.put_nowait((uri, change))

    stop = listen_for_changes(user_id, on_change)
    try:
        yield f"retry: {settings.EXAI_MCP_SSE_RETRY_MS}\n\n".encode()
        while True:
            try:
                uri, change = await asyncio.wait_for(queue.get(), timeout=settings.EXAI_HEARTBEAT_S)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            # The session's subscriptions as they are now (set by POSTs, perhaps at another process).
            current = await cache.aget(_session_key(user_id, session_id))
            if current is None:
                return  # the session ended
            subscriptions = set(current.get("subscriptions", ()))
            for note in change_notifications(uri, change, list_changed=True, subscriptions=subscriptions):
                yield _sse(note)
    finally:
        stop()


async def _terminate(request: HttpRequest, user_id: Any) -> HttpResponse:
    session_id = request.headers.get(SESSION_HEADER) or ""
    session = await cache.aget(_session_key(user_id, session_id)) if session_id else None
    if session is None or session.get("user") != user_id:
        return _rpc_error(404, INVALID_REQUEST, "unknown MCP session")
    await cache.adelete(_session_key(user_id, session_id))
    for task in _in_flight.pop(session_id, {}).values():
        task.cancel()
    return HttpResponse(status=204)
