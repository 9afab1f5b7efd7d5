"""Origin validation for the WebSockets and POST /mcp (DNS rebinding, cross-site pages).

A browser always says where a page came from in `Origin`; a page on another site
must not drive this server with a token it found or a socket it opened. Allowed:
no Origin at all (not a browser: MCP clients, scripts, the stdio bridge), a page
on one of ALLOWED_HOSTS, or one of EXAI_ALLOWED_ORIGINS exactly.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import validate_host

_DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]  # what Django itself allows in DEBUG with none set


def origin_allowed(origin: str | None) -> bool:
    if origin is None:
        return True
    if origin in settings.EXAI_ALLOWED_ORIGINS:
        return True
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    if not host:  # "null" (sandboxed frames, file:// pages) and anything unparseable
        return False
    if ":" in host:
        host = f"[{host}]"
    allowed = settings.ALLOWED_HOSTS or (_DEBUG_HOSTS if settings.DEBUG else [])
    return validate_host(host, allowed)


def scope_origin(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin-1")
    return None


class OriginCheckMiddleware:
    """Refuse a WebSocket handshake (HTTP 403) from a page on an origin that is not allowed."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope_origin(scope)):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
