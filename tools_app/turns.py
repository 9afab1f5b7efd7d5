"""Conversation turns are stored just after the answer goes out, in batches.

A tool that answered a thread hands its turn (the question and the model's answer) to
this process's `TurnWriter` and returns at once; the caller has the answer while the turn
is still being written. The writer takes every turn queued meanwhile and writes them in
one trip to the database: one transaction with one INSERT for the new threads and one for
all the messages (one at a time instead when that fails, so one bad turn never costs the
others).

Memory stays exact: a thread's next turn waits until its previous turn is stored.
- In this process, through the pending write (exai_site/outages.py `thread_written`).
- In cluster mode (REDIS_URL), on any process: before the answer goes out, a marker
  `thread:{id}:writing` is set in Redis; it is removed once the turn is stored, and a
  call that continues the thread waits while it exists (at most `THREAD_WAIT_S`, then a
  retryable `overloaded`). A marker whose process died lapses after `MARKER_TTL_MS`.

A turn waits up to EXAI_TURN_FLUSH_MS (default 20) for others to share its trip to the
database — unless the thread's next turn is already waiting for it here — so a busy
process stores many turns per transaction.

Durability: SIGTERM flushes the queue before the process stops (a shutdown hook). A
process killed outright (SIGKILL, a crash, the machine going down) within the few
milliseconds (at most EXAI_TURN_FLUSH_MS and a write) between an answer and its write
loses that one turn: the caller has the
answer, the thread does not remember it. With the database away, turns are retried in
the background for about two minutes (exai_site/outages.py), as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings

from exai_site.outages import (
    THREAD_WAIT_S,
    Unreachable,
    finish_later,
    hold_thread,
    thread_waits,
    thread_written,
    unreachable_service,
)
from tools_app.conversations import conversation_record_turn, conversations_record_turns
from tools_app.models import Conversation
from tools_app.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)
T = TypeVar("T")

MARKER_TTL_MS = 120_000  # longer than the background retries of a turn (about two minutes)
_MARKER_POLL_S = (0.002, 0.005, 0.01, 0.02, 0.05)


@dataclass
class PendingTurn:
    """One answered turn waiting to be written: the fields of `conversations_record_turns`."""

    thread_id: uuid.UUID
    fields: dict[str, Any]
    written: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    marked: bool = False


def turn_marker(thread_id: Any) -> str:
    """The Redis key that says a turn of the thread is still being written."""
    return redis_key("thread", thread_id, "writing")


_unmarking: set[asyncio.Task[None]] = set()


def unmark_later(thread_id: Any) -> None:
    """Clear a marker set for a turn the call did not keep after all (it failed after its answer)."""

    async def unmark() -> None:
        with contextlib.suppress(Exception):  # it lapses by itself
            await get_redis().delete(turn_marker(thread_id))

    task = asyncio.get_running_loop().create_task(unmark(), context=contextvars.Context())
    _unmarking.add(task)
    task.add_done_callback(_unmarking.discard)


# The writer's own thread (and database connection): the thread Django's sync code shares
# stays free for the calls that follow, which would otherwise queue behind the write.
_writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exai-turn-writer")


def _in_writer_thread(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    return DatabaseSyncToAsync(function, thread_sensitive=False, executor=_writer_thread)


_RETRY = "retry"  # a turn the database went away before storing


def _write_batch(turns: list[PendingTurn]) -> list[BaseException | str | None]:
    """Write the turns, all at once or else one by one; for each, None (stored), its
    failure, or `_RETRY` when the database went away before it was stored."""
    try:
        conversations_record_turns([{"thread_id": turn.thread_id, **turn.fields} for turn in turns])
        return [None] * len(turns)
    except Exception as exc:
        if unreachable_service(exc) is not None:
            return [_RETRY] * len(turns)
    outcomes: list[BaseException | str | None] = []
    for turn in turns:  # each its own transaction: a deferred constraint fails at its own commit
        try:
            conversation_record_turn(thread_id=turn.thread_id, **turn.fields)
        except Exception as exc:
            if unreachable_service(exc) is not None:
                return outcomes + [_RETRY] * (len(turns) - len(outcomes))
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


class TurnWriter:
    """This process's queue of answered turns, drained by one task at a time.

    A turn waits up to `EXAI_TURN_FLUSH_MS` for others to share its trip to the database,
    unless something is waiting for it (the thread's next turn here, a flush)."""

    def __init__(self) -> None:
        self._queue: list[PendingTurn] = []
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def submit(self, turn: PendingTurn) -> None:
        self._queue.append(turn)
        if self._task is None or self._task.done():
            # A context of its own: nothing of the call that queued the turn comes along.
            self._task = asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())

    def hurry(self) -> None:
        """Write what is queued now, without waiting for more."""
        self._hurry.set()

    async def flush(self) -> None:
        """Wait until every queued turn is written (or handed to the background retries)."""
        while self._task is not None and not self._task.done():
            self.hurry()
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        linger = settings.EXAI_TURN_FLUSH_MS / 1000
        if linger > 0 and not self._hurry.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(linger):
                    await self._hurry.wait()
        self._hurry.clear()
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcomes = await _in_writer_thread(_write_batch)(batch)
            except Exception as exc:  # reaching the database at all
                outcomes = [_RETRY if unreachable_service(exc) is not None else exc] * len(batch)
            self._retry_later([turn for turn, outcome in zip(batch, outcomes, strict=True) if outcome == _RETRY])
            done = [(turn, outcome) for turn, outcome in zip(batch, outcomes, strict=True) if outcome != _RETRY]
            await self._unmark([turn for turn, _ in done if turn.marked])
            for turn, outcome in done:
                if isinstance(outcome, BaseException):
                    logger.error("could not keep a turn of thread %s", turn.thread_id, exc_info=outcome)
                turn.written.set_result(None)

    def _retry_later(self, batch: list[PendingTurn]) -> None:
        if not batch:
            return
        logger.warning("the database is unreachable; %d turns are kept when it returns", len(batch))
        for turn in batch:

            async def again(turn: PendingTurn = turn) -> None:
                await _in_writer_thread(conversation_record_turn)(thread_id=turn.thread_id, again=True, **turn.fields)
                await self._unmark([turn] if turn.marked else [])

            retry = finish_later(f"keep a turn of thread {turn.thread_id}", again)
            if retry is None:
                turn.written.set_result(None)
                continue
            hold_thread(str(turn.thread_id), retry)
            retry.add_done_callback(functools.partial(self._after_retry, turn))

    @staticmethod
    def _after_retry(turn: PendingTurn, _: object) -> None:
        # Written, or given up on (logged); a marker left behind lapses by itself.
        if not turn.written.done():
            turn.written.set_result(None)

    @staticmethod
    async def _unmark(turns: list[PendingTurn]) -> None:
        if not turns:
            return
        try:
            await get_redis().delete(*(turn_marker(turn.thread_id) for turn in turns))
        except Exception:
            # They lapse by themselves; meanwhile the threads' next turns wait for them.
            logger.warning("could not clear %d thread markers in Redis", len(turns), exc_info=True)


_writers: dict[asyncio.AbstractEventLoop, TurnWriter] = {}


def turn_writer() -> TurnWriter:
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        for old in [old for old in _writers if old.is_closed()]:
            del _writers[old]
        writer = _writers[loop] = TurnWriter()
    return writer


async def flush_turns() -> None:
    """Write every answered turn still queued (shutdown hook; tests)."""
    writer = _writers.get(asyncio.get_running_loop())
    if writer is not None:
        await writer.flush()


async def keep_turn(
    *, conversation: Conversation | None, thread_id: uuid.UUID | None = None, marked: bool = False, **fields: Any
) -> Conversation:
    """Queue one answered turn of `conversation` (a new thread when None, as `thread_id` if
    given) and return the thread as it will be once written; its next turn waits for the write.

    `marked`: the thread's Redis marker is already set (by the provider request's way out)."""
    if conversation is None:
        thread_id = thread_id or uuid.uuid4()
        thread = Conversation(id=thread_id, tool=fields["tool"], turn_count=1, expires_at=Conversation.fresh_expiry())
    else:
        thread_id = conversation.id
        thread = conversation
        thread.turn_count += 1
        thread.expires_at = Conversation.fresh_expiry()
    turn = PendingTurn(thread_id, {"conversation": conversation, **fields})
    if settings.REDIS_URL:
        try:
            if not marked:
                await get_redis().set(turn_marker(thread_id), 1, px=MARKER_TTL_MS)
            turn.marked = True
        except Exception:
            # Another process could read this thread a turn short until the write lands.
            logger.warning("could not mark thread %s as being written", thread_id, exc_info=True)
    hold_thread(str(thread_id), turn.written)
    turn_writer().submit(turn)
    return thread


async def thread_ready(thread_id: Any) -> None:
    """Wait until the thread's last answered turn is stored, wherever it was answered.

    Raises Unreachable when that takes longer than THREAD_WAIT_S."""
    if not isinstance(thread_id, str) or not thread_id:
        return
    writer = _writers.get(asyncio.get_running_loop())
    if writer is not None and thread_waits(thread_id):
        writer.hurry()  # its previous turn is still queued here: write it now
    await thread_written(thread_id)
    if not settings.REDIS_URL:
        return
    try:
        uuid.UUID(thread_id)
    except ValueError:
        return  # not a thread id: the tool says so
    loop = asyncio.get_running_loop()
    ends = loop.time() + THREAD_WAIT_S
    for attempt in range(10**9):
        if not await get_redis().exists(turn_marker(thread_id)):
            return
        if loop.time() >= ends:
            raise Unreachable("the database")
        await asyncio.sleep(_MARKER_POLL_S[min(attempt, len(_MARKER_POLL_S) - 1)])
