"""An HTTP request closes the database connections it opened.

Under ASGI, Django runs a request's synchronous work (and `database_sync_to_async`) in a thread
of the request's own, and keeps its connections per request context. A persistent connection
(CONN_MAX_AGE) opened there outlived the request, unreachable, until garbage collection closed
it, so concurrent HTTP requests opened connections until PostgreSQL refused more (Django
ticket #33497; 16 concurrent MCP HTTP clients did it). Each HTTP request now closes its own
when it finishes. WebSocket consumers and the server's own threads keep theirs persistent
(EXAI_DB_CONN_MAX_AGE_S), where reuse is what saves the time.
"""

from __future__ import annotations

from typing import Any

from django.db import connections


def close_request_connections(**kwargs: Any) -> None:
    """`request_finished` receiver: runs in the finished request's context, so `connections`
    here are that request's, and no other request's or thread's."""
    for connection in connections.all(initialized_only=True):
        # Inside a transaction is only a test's own wrapping one (Django's test client runs the
        # request on the test's connection): that one is not the request's to close.
        if not connection.in_atomic_block:
            connection.close()
