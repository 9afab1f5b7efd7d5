"""`manage.py runworker exai.background`, as Channels runs it, but outliving a channel layer that restarts.

Channels' worker stops for good when its receive from Redis fails (a restart, a failover):
the AI investigations would then wait for someone to start it again. This one logs the
failure, waits (backing off to 30 s) and listens again; anything else still ends it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from channels.management.commands.runworker import Command as ChannelsRunworker

from exai_site.outages import unreachable_service

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


class Command(ChannelsRunworker):
    help = "Run a Channels worker for the given channels, starting again when Redis comes back after an outage."

    def handle(self, *args: Any, **options: Any) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                super().handle(*args, **options)
                return
            except Exception as exc:
                if (service := unreachable_service(exc)) is None:
                    raise
                if time.monotonic() - started > 60:
                    delay = 0.5  # it had been running fine: a new outage, start the backoff again
                logger.warning("the worker lost %s; listening again in %.1fs", service, delay)
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
