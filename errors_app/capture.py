"""Turn every unexpected exception and ERROR log record into an occurrence, off the caller's path.

Capturing costs the caller a fingerprint and a counter increment: occurrences are
aggregated per distinct error in memory (exact counts, one entry per error however hard
it storms) and written in batches by `flush_errors`, which runs on the server's event
loop (through the ORM's thread) shortly after the first capture. Capture never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import traceback
from collections import deque
from typing import Any

from django.conf import settings
from django.utils import timezone

from errors_app.fingerprint import fingerprint, innermost_project_frame, normalize_message, project_file
from errors_app.occurrences import Pending
from exai_site.redaction import scrub
from tools_app.observers import call_context

logger = logging.getLogger(__name__)


_RECENT_LINES = 20
_recent: deque[str] = deque(maxlen=_RECENT_LINES)


_pending: dict[str, Pending] = {}
# Distinct errors held while the database is away, and how often a held batch is tried again.
MAX_PENDING_ERRORS = 10_000
RETRY_FLUSH_S = 2.0
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_flush_scheduled = False


def _record(error_type: str, raw_message: str, location: str, build_context: Any) -> None:
    message = normalize_message(scrub(raw_message))
    error_hash = fingerprint(error_type, message, location)
    now = timezone.now()
    with _lock:
        pending = _pending.get(error_hash)
        if pending is not None:
            pending.count += 1
            pending.last_at = now
        else:
            # Only the first occurrence of a batch pays for its context.
            _pending[error_hash] = Pending(error_hash, error_type, message, location, build_context(), now, now)
    _schedule_flush()


def capture_exception(exc: BaseException, *, context: dict[str, Any] | None = None) -> None:
    """Record one occurrence of `exc`; never raises, never blocks on I/O."""
    try:
        error_type = type(exc).__qualname__
        if type(exc).__module__ not in ("builtins", "__main__"):
            error_type = f"{type(exc).__module__}.{error_type}"

        def build_context() -> dict[str, Any]:
            return scrub(
                {
                    **(call_context.get() or {}),
                    **(context or {}),
                    "message": str(exc)[:4000],
                    "stack_trace": "".join(traceback.format_exception(exc))[-20_000:],
                    "recent_log_lines": list(_recent),
                }
            )

        _record(error_type, str(exc), innermost_project_frame(exc.__traceback__), build_context)
    except Exception:  # capture must never hurt the caller
        logger.debug("could not capture an exception", exc_info=True)


def capture_log_record(record: logging.LogRecord) -> None:
    try:
        if record.exc_info and record.exc_info[1] is not None:
            capture_exception(record.exc_info[1], context={"logger": record.name, "log_message": record.getMessage()})
            return
        # Where this project logged it; a library's log line is named by its logger, not by a
        # frame deep in site-packages that says nothing about which part of the server it was.
        relative = project_file(record.pathname)
        location = f"{relative} in {record.funcName}" if relative is not None else f"logger {record.name}"

        def build_context() -> dict[str, Any]:
            return scrub(
                {
                    **(call_context.get() or {}),
                    "logger": record.name,
                    "message": record.getMessage()[:4000],
                    "recent_log_lines": list(_recent),
                }
            )

        _record(f"log:{record.name}", record.getMessage(), location, build_context)
    except Exception:
        logger.debug("could not capture a log record", exc_info=True)


class ErrorCaptureHandler(logging.Handler):
    """A logging handler that turns ERROR records into error occurrences."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("errors_app"):
            return  # the capture machinery's own trouble must not feed itself
        capture_log_record(record)


class RecentLinesHandler(logging.Handler):
    """Keeps the last log lines, scrubbed, as context for the next error."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            _recent.append(scrub(self.format(record))[:500])


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The server's event loop: flushes (and the live feed and investigations) run on it."""
    global _loop, _flush_scheduled
    if loop is not _loop:
        # A flush scheduled on a previous loop will never run there: this loop takes it over.
        _flush_scheduled = False
    _loop = loop
    if _pending:
        _schedule_flush()


def _schedule_flush(delay_s: float | None = None) -> None:
    global _flush_scheduled
    loop = _loop
    if loop is None or loop.is_closed() or _flush_scheduled:
        return
    _flush_scheduled = True
    # In a context of its own: the capturing request's context holds its executor for the
    # ORM (asgiref's thread-sensitive mode), which is gone by the time the flush runs.
    delay = settings.EXAI_ERROR_FLUSH_S if delay_s is None else delay_s
    loop.call_soon_threadsafe(loop.call_later, delay, _start_flush, loop, context=contextvars.Context())


def _start_flush(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(flush_and_dispatch())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


_tasks: set[asyncio.Task[None]] = set()


async def flush_and_dispatch() -> None:
    """Write the pending occurrences, then announce them and start the investigations they call for."""
    global _flush_scheduled
    from channels.db import database_sync_to_async

    from errors_app import services

    _flush_scheduled = False
    try:
        recorded = await database_sync_to_async(flush_errors)()
    except Exception:
        logger.warning("could not write error occurrences", exc_info=True)
        return
    try:
        await services.error_dispatch(recorded=recorded)
    except Exception:
        # Written all the same: only the live feed and the investigations' start missed them.
        logger.warning("could not announce %d error occurrence(s)", len(recorded), exc_info=True)


def take_pending() -> list[Pending]:
    global _pending
    with _lock:
        batch, _pending = _pending, {}
    return list(batch.values())


def flush_errors() -> list[Any]:
    """Write every pending occurrence now (synchronous: the ORM). Returns what was recorded.

    With the database away, what is not written yet goes back to the pending ones (counts
    merged with any captured meanwhile) for the next flush, which is scheduled again.
    """
    from errors_app.services import error_record_occurrences
    from exai_site.outages import unreachable_service

    batch = take_pending()
    recorded = []
    for index, pending in enumerate(batch):
        try:
            recorded.append(error_record_occurrences(pending=pending))
        except Exception as exc:
            if unreachable_service(exc) is None:
                raise
            _put_back(batch[index:])
            logger.warning("the database is unreachable; %d error(s) held for later", len(batch) - index)
            break
    return recorded


def _put_back(unwritten: list[Pending]) -> None:
    global _flush_scheduled
    with _lock:
        for pending in unwritten:
            newer = _pending.get(pending.error_hash)
            if newer is not None:  # captured again meanwhile: one entry, every occurrence counted
                newer.count += pending.count
                newer.first_at = min(newer.first_at, pending.first_at)
            else:
                _pending[pending.error_hash] = pending
        # Bounded: one entry per distinct error, the rarest dropped past the bound.
        while len(_pending) > MAX_PENDING_ERRORS:
            del _pending[min(_pending, key=lambda key: _pending[key].count)]
    _flush_scheduled = False
    _schedule_flush(delay_s=RETRY_FLUSH_S)


def install() -> None:
    """Capture the core's provider failures, flush on shutdown and bind each new server loop
    (called from the app's ready())."""
    from tools_app import lifecycle, observers

    observers.on_failure(lambda exc, context: capture_exception(exc, context=context))
    lifecycle.on_new_loop(bind_loop)
    lifecycle.on_shutdown(flush_and_dispatch)
