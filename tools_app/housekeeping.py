"""Work each server process does now and then on its own loop: purging expired conversation threads.

Every EXAI_THREAD_PURGE_INTERVAL_S (0: never; `cleanup_conversations` from cron instead)
each process deletes the threads past their expiry. Several processes may do it at
once: a thread is deleted once, the others find nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from tools_app.conversations import conversations_purge_expired

logger = logging.getLogger(__name__)


def start_housekeeping(loop: asyncio.AbstractEventLoop) -> None:
    """Schedule the first purge on `loop` (a hook of tools_app.lifecycle.on_new_loop)."""
    interval = settings.EXAI_THREAD_PURGE_INTERVAL_S
    if interval > 0:
        # In a context of its own: nothing of the request that started the loop's lifecycle.
        loop.call_later(interval, _purge_soon, loop, context=contextvars.Context())


def _purge_soon(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(_purge(loop))
    _running.add(task)
    task.add_done_callback(_running.discard)


_running: set[asyncio.Task[None]] = set()


async def _purge(loop: asyncio.AbstractEventLoop) -> None:
    try:
        purged = await database_sync_to_async(conversations_purge_expired)()
        if purged.threads:
            logger.info("purged %d expired thread(s), %d message(s)", purged.threads, purged.messages)
    except Exception:
        logger.warning("could not purge expired threads; trying again later", exc_info=True)
    finally:
        if not loop.is_closed():
            start_housekeeping(loop)
