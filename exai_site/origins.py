"""Origin validation for the WebSockets and POST /mcp (DNS rebinding, cross-site pages).

A browser always says where a page came from in `Origin`; a page on another site
must not drive this server with a token it found or a socket it opened. Allowed:
no Origin at all (not a browser: MCP clients, scripts, the stdio bridge), a page
served by this server itself (the same host *and port* as the request's `Host`, on one
of ALLOWED_HOSTS; the scheme is not compared, since behind a TLS proxy the server itself
sees plain http), or one of EXAI_ALLOWED_ORIGINS exactly. So another
program on localhost (any other port) cannot open the sockets, even though its host is
allowed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

_DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]  # what Django itself allows in DEBUG with none set
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """May a page from `origin` use this server, reached as `host` (the request's Host header)?"""
    if origin is None:
        return True
    if origin in settings.EXAI_ALLOWED_ORIGINS:
        return True
    try:
        parts = urlsplit(origin)
        origin_port = str(parts.port) if parts.port else _DEFAULT_PORTS.get(parts.scheme, "")
    except ValueError:
        return False
    if not parts.hostname or not host:  # "null" (sandboxed frames, file:// pages), unparseable, no Host
        return False
    origin_host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    request_host, request_port = split_domain_port(host.lower())
    # Behind a TLS proxy the page is https while the proxy may reach us on any port: the Host
    # header, which the proxy passes on, is what the browser used.
    if origin_host.lower().strip("[]") != request_host.strip("[]"):
        return False
    if (request_port or _DEFAULT_PORTS.get(parts.scheme, "")) != origin_port:
        return False
    allowed = settings.ALLOWED_HOSTS or (_DEBUG_HOSTS if settings.DEBUG else [])
    return validate_host(origin_host, allowed)


def scope_header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None
