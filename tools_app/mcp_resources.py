"""MCP resources: what a caller owns on this server, under `exai://{kind}/{id}`.

Each kind of resource (conversation threads here; files register theirs from `files_app`)
is a `ResourceKind` in a small registry: how to list the caller's, read one, and complete
an id. Everything is scoped to the authenticated user: another user's id reads as "not
found", the same as an id that never existed.

Changes are announced through `resource_changed(user_id, uri, ...)`: the MCP sessions of that
user that subscribed to the URI get `notifications/resources/updated`, and every one of their
sessions `notifications/resources/list_changed` when a resource appears or goes. With
REDIS_URL the announcement travels through Redis pub/sub, so a session held by another server
process hears it; without it, this process's sessions do. It may be called from any thread
(the turn writer has its own).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import json
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from tools_app.redis_client import channel_messages, redis_key

logger = logging.getLogger(__name__)

SCHEME = "exai://"
PAGE_SIZE = 100
COMPLETION_LIMIT = 100
# resources/read answers with the content itself; a file larger than this is read over REST.
MAX_READ_BYTES = 4 * 1024 * 1024


class ResourceNotFound(LookupError):
    pass


class ResourceTooLarge(ValueError):
    """A resource too large to return in one read; the message says where to get it instead."""


@dataclass(frozen=True)
class ResourceKind:
    kind: str  # the URI's first segment: exai://{kind}/{id}
    variable: str  # the template's variable, for completion/complete
    title: str
    description: str
    mime_type: str
    # All synchronous (they query the database); called through database_sync_to_async.
    list_owned: Callable[[Any, int, int], list[dict[str, Any]]]  # (user, offset, limit) -> resources
    read_owned: Callable[[Any, str], dict[str, Any] | None]  # (user, id) -> one `contents` item, or None
    ids_owned: Callable[[Any, str, int], list[str]]  # (user, prefix, limit) -> ids, newest first

    def uri(self, ident: Any) -> str:
        return f"{SCHEME}{self.kind}/{ident}"

    def template(self) -> dict[str, Any]:
        return {
            "uriTemplate": f"{SCHEME}{self.kind}/{{{self.variable}}}",
            "name": self.kind,
            "title": self.title,
            "description": self.description,
            "mimeType": self.mime_type,
        }


RESOURCE_KINDS: dict[str, ResourceKind] = {}


def register_resource_kind(kind: ResourceKind) -> None:
    RESOURCE_KINDS[kind.kind] = kind


def parse_uri(uri: Any) -> tuple[ResourceKind, str]:
    if isinstance(uri, str) and uri.startswith(SCHEME):
        kind, _, ident = uri[len(SCHEME) :].partition("/")
        if kind in RESOURCE_KINDS and ident and "/" not in ident:
            return RESOURCE_KINDS[kind], ident
    raise ResourceNotFound(uri)


def list_resources(user: Any, cursor: str | None) -> dict[str, Any]:
    """One page of the caller's resources, every kind in turn; `nextCursor` while more remain."""
    kinds = list(RESOURCE_KINDS.values())
    index, offset = _decode_cursor(cursor)
    page: list[dict[str, Any]] = []
    while index < len(kinds) and len(page) < PAGE_SIZE:
        wanted = PAGE_SIZE - len(page)
        found = kinds[index].list_owned(user, offset, wanted + 1)
        page += found[:wanted]
        if len(found) > wanted:
            offset += wanted
            break
        index, offset = index + 1, 0
    result: dict[str, Any] = {"resources": page}
    if index < len(kinds) and (offset or len(page) == PAGE_SIZE):
        result["nextCursor"] = _encode_cursor(index, offset)
    return result


def _encode_cursor(index: int, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([index, offset]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    try:
        index, offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise ValueError("invalid cursor") from None
    if not isinstance(index, int) or not isinstance(offset, int) or index < 0 or offset < 0:
        raise ValueError("invalid cursor")
    return index, offset


def read_resource(user: Any, uri: str) -> dict[str, Any]:
    kind, ident = parse_uri(uri)
    content = kind.read_owned(user, ident)
    if content is None:
        raise ResourceNotFound(uri)
    return {"contents": [{"uri": uri, **content}]}


def complete_variable(user: Any, uri_template: str, variable: str, prefix: str) -> list[str]:
    kind = next((kind for kind in RESOURCE_KINDS.values() if kind.template()["uriTemplate"] == uri_template), None)
    if kind is None or variable != kind.variable:
        return []
    return kind.ids_owned(user, prefix, COMPLETION_LIMIT)


def ids_starting_with(owned: Any, prefix: str, limit: int) -> list[str]:
    """The ids (UUIDs) of `owned` (a queryset, newest first) whose text starts with what was
    typed, matched by the database however many the user has."""
    prefix = prefix.strip().lower()
    if prefix:
        owned = owned.filter(pk__startswith=prefix)
    return [str(ident) for ident in owned.values_list("pk", flat=True)[:limit]]


def complete_ids(user: Any, kind: str, prefix: str) -> list[str]:
    return RESOURCE_KINDS[kind].ids_owned(user, prefix, COMPLETION_LIMIT) if kind in RESOURCE_KINDS else []


# --- Change announcements -------------------------------------------------------------------------

Listener = Callable[[str, str], Coroutine[Any, Any, None]]  # (uri, change: "updated" | "created" | "deleted")


@dataclass(eq=False)
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    user_id: Any
    on_change: Listener


_subscribers: dict[Any, set[_Subscriber]] = {}
_subscribers_lock = threading.Lock()
_redis_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def _channel() -> str:
    return redis_key("mcp", "resources")


def listen_for_changes(user_id: Any, on_change: Listener) -> Callable[[], None]:
    """Call `on_change(uri, change)` on this event loop for each change to `user_id`'s
    resources until the returned function is called."""
    loop = asyncio.get_running_loop()
    subscriber = _Subscriber(loop, user_id, on_change)
    with _subscribers_lock:
        _subscribers.setdefault(user_id, set()).add(subscriber)
    if settings.REDIS_URL:
        listener = _redis_listeners.get(loop)
        if listener is None or listener.done():
            _redis_listeners[loop] = loop.create_task(_hear_changes(), context=contextvars.Context())

    def stop() -> None:
        with _subscribers_lock:
            subscribers = _subscribers.get(user_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    _subscribers.pop(user_id, None)

    return stop


def resource_changed(user_id: Any, uri: str, change: str = "updated") -> None:
    """Announce a change to one of `user_id`'s resources (from any thread, never raising)."""
    if settings.REDIS_URL:
        try:
            _sync_redis().publish(_channel(), json.dumps({"user": user_id, "uri": uri, "change": change}))
        except Exception:
            logger.warning("could not announce a change to %s; subscribers miss this one", uri, exc_info=True)
        return
    _deliver(user_id, uri, change)


def _deliver(user_id: Any, uri: str, change: str) -> None:
    with _subscribers_lock:
        subscribers = list(_subscribers.get(user_id, ()))
    for subscriber in subscribers:
        if subscriber.loop.is_closed():
            continue

        def run(subscriber: _Subscriber = subscriber) -> None:
            task = subscriber.loop.create_task(subscriber.on_change(uri, change))
            task.add_done_callback(_log_failure)

        try:
            subscriber.loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop closed meanwhile
            continue


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("a resource notification could not be sent", exc_info=task.exception())


async def _hear_changes() -> None:
    try:
        async for data in channel_messages(_channel()):
            try:
                change = json.loads(data)
                _deliver(change["user"], change["uri"], change["change"])
            except (ValueError, KeyError, TypeError):
                continue
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.warning("stopped hearing resource changes; the next subscription listens again", exc_info=True)


_sync_client: Any = None
_sync_client_lock = threading.Lock()


def _sync_redis() -> Any:
    """A small synchronous client: announcements come from worker threads as well as the loop."""
    global _sync_client
    with _sync_client_lock:
        if _sync_client is None or getattr(_sync_client, "_exai_url", None) != settings.REDIS_URL:
            import redis

            _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
            _sync_client._exai_url = settings.REDIS_URL
        return _sync_client
