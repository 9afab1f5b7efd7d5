"""Lift daphne's 1 MiB WebSocket message cap to EXAI's frame limit.

Daphne drops any message over 1 MiB (without a close frame) unless it is started
with --websocket-max-message-size, so the contract's plain
`daphne -b 127.0.0.1 -p 8079 exai_site.asgi:application` would kill a socket that
sends a 2 MiB prompt. When daphne's limits are still at that default, raise them
to twice EXAI_MAX_FRAME_BYTES: the consumers answer frames between the two limits
with a clear `invalid_request`, and daphne still fails the connection on anything
larger, so an unauthenticated client cannot exhaust memory. A value given on
daphne's command line is kept as it is.
"""

import functools
from typing import Any

from django.conf import settings

DAPHNE_DEFAULT_LIMIT = 1024 * 1024


def install() -> None:
    try:
        from daphne.server import Server
    except ImportError:  # served by another ASGI server
        return
    if getattr(Server, "_exai_limits_installed", False):
        return
    original = Server.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        ceiling = 2 * settings.EXAI_MAX_FRAME_BYTES
        if self.websocket_max_message_size == DAPHNE_DEFAULT_LIMIT:
            self.websocket_max_message_size = ceiling
        if self.websocket_max_frame_size == DAPHNE_DEFAULT_LIMIT:
            self.websocket_max_frame_size = ceiling

    Server.__init__ = __init__
    Server._exai_limits_installed = True
