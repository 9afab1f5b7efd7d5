"""Redis or the database going away for a while: what a call says, and what is finished later.

Services restart (a Redis failover, a database upgrade, a network blip). The rules:
- Before the provider has answered, a call that needs an unreachable service fails at
  once with `overloaded` and `retry_after_s`: retryable, never `internal`, never a hang.
- Once the provider has answered, the answer is delivered. What the call still had to
  write (the conversation turn, the replayable result, the breaker's count, giving back
  its slots) is retried in the background, bounded, with a log line if it finally fails;
  slot leases expire by themselves if a give-back is lost.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 2.0
# Background retries: after 0.5, 1, 2, 4, 8, 8, 8… seconds, about two minutes in all.
_ATTEMPTS = 18
_FIRST_DELAY_S = 0.5
_MAX_DELAY_S = 8.0

_pending: set[asyncio.Task[None]] = set()
# Conversation threads whose last answered turn is still to be written: their next turn waits.
_threads: dict[str, asyncio.Future[None]] = {}
THREAD_WAIT_S = 30.0


class Unreachable(Exception):
    """A call cannot go on until `service` is back."""

    def __init__(self, service: str) -> None:
        super().__init__(unreachable_message(service))
        self.service = service


def unreachable_service(exc: BaseException) -> str | None:
    """ "Redis" or "the database" when `exc` says that service cannot be reached now, else None."""
    import redis.exceptions
    from django.db import InterfaceError, OperationalError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # it may be wrapped (ORM, SDK, task)
        seen.add(id(current))
        if isinstance(current, Unreachable):
            return current.service
        if isinstance(current, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return "Redis"
        if isinstance(current, OperationalError | InterfaceError):
            return "the database"
        current = current.__cause__ or current.__context__
    return None


def unreachable_message(service: str) -> str:
    return f"{service} is unreachable for the moment (a restart?); retry in a few seconds."


def finish_later(what: str, operation: Callable[[], Awaitable[Any]]) -> asyncio.Task[None] | None:
    """Run `operation` again in the background until it succeeds (bounded); log if it never does."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        logger.error("could not %s, and there is no loop to retry it on", what)
        return None
    # A context of its own: nothing of the finished call (its executor, its deadline) comes along.
    task = loop.create_task(_retry(what, operation), context=contextvars.Context())
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return task


def hold_thread(thread_id: str, write: asyncio.Future[None] | None) -> None:
    """The thread's next turn waits for `write` (its last turn, kept later)."""
    if write is not None:
        _threads[thread_id] = write
        write.add_done_callback(lambda _: _threads.pop(thread_id, None) if _threads.get(thread_id) is write else None)


def thread_waits(thread_id: Any) -> bool:
    """Whether the thread's last answered turn is still to be written here."""
    return str(thread_id) in _threads


async def thread_written(thread_id: Any) -> None:
    """Wait until the thread's last answered turn is written; Unreachable if that takes too long."""
    write = _threads.get(str(thread_id)) if thread_id else None
    if write is None:
        return
    try:
        async with asyncio.timeout(THREAD_WAIT_S):
            await asyncio.shield(write)
    except TimeoutError:
        raise Unreachable("the database") from None


async def _retry(what: str, operation: Callable[[], Awaitable[Any]]) -> None:
    delay = _FIRST_DELAY_S
    for attempt in range(1, _ATTEMPTS + 1):
        await asyncio.sleep(delay)
        try:
            await operation()
        except Exception as exc:
            if attempt == _ATTEMPTS or unreachable_service(exc) is None:
                logger.error("gave up trying to %s after %d attempts", what, attempt, exc_info=True)
                return
            delay = min(delay * 2, _MAX_DELAY_S)
            continue
        logger.info("%s: done after the outage (retry %d)", what, attempt)
        return


async def settled() -> None:
    """Wait for the background retries under way (tests, shutdown)."""
    while _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)


async def now_or_later(what: str, operation: Callable[[], Awaitable[Any]]) -> None:
    """Do `operation` now; if a service is down, keep retrying it in the background instead of failing."""
    try:
        await operation()
    except Exception as exc:
        service = unreachable_service(exc)
        if service is None:
            raise
        logger.warning("could not %s: %s is unreachable; retrying in the background", what, service)
        finish_later(what, operation)
