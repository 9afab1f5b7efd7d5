"""Graceful shutdown: drain calls, release everything, flush, close sockets with 1012.

On SIGTERM the server stops taking calls (`shutting_down`), lets the calls in flight
finish within EXAI_DRAIN_S, cancels what is left (each is answered `shutting_down`
and gives its slots back on the way out), runs the flush hooks (metrics and the
like), closes every WebSocket with 1012 so clients reconnect, and then hands the
signal to the ASGI server's own handler, which stops the process.

The handler is installed on the first connection, not at import: daphne and uvicorn
install theirs when they start serving, and ours must sit in front of theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from django.conf import settings

logger = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 1012
_flush_hooks: list[Callable[[], Awaitable[None]]] = []
_loop_hooks: list[Callable[[asyncio.AbstractEventLoop], None]] = []


class Closable(Protocol):
    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...


def on_new_loop(hook: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    """Register a function to call with each event loop the server starts serving on."""
    _loop_hooks.append(hook)


def on_shutdown(hook: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Register a coroutine function to run after the calls have drained (e.g. a metrics flush)."""
    _flush_hooks.append(hook)
    return hook


class Lifecycle:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.draining = False
        self.calls: set[asyncio.Task[Any]] = set()
        self.sockets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._installed = False
        self._previous: Any = None
        self._shutdown_task: asyncio.Task[None] | None = None

    def install_signal_handler(self) -> None:
        if self._installed or not settings.EXAI_HANDLE_SIGTERM:
            return
        self._installed = True
        self._previous = signal.getsignal(signal.SIGTERM)
        try:
            self.loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            self._installed = False

    def _on_sigterm(self) -> None:
        self._shutdown_task = asyncio.ensure_future(self.shutdown(hand_over=True))

    def track(self, task: asyncio.Task[Any]) -> None:
        self.calls.add(task)

    def untrack(self, task: asyncio.Task[Any]) -> None:
        self.calls.discard(task)

    async def shutdown(self, *, hand_over: bool = False) -> None:
        if self.draining:
            return
        self.draining = True
        logger.warning("shutting down: draining %d calls for up to %gs", len(self.calls), settings.EXAI_DRAIN_S)
        if self.calls:
            _, pending = await asyncio.wait(set(self.calls), timeout=settings.EXAI_DRAIN_S)
            for task in pending:
                task.cancel()
            if pending:
                # Each cancelled call answers `shutting_down` and releases its slots on the way out.
                await asyncio.wait(pending, timeout=5)
        # Let the transports send the last results before the sockets close.
        await asyncio.sleep(0.05)
        for hook in _flush_hooks:
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook %s failed", getattr(hook, "__name__", hook))
        sockets = list(self.sockets)
        await asyncio.gather(*(sock.close(code=CLOSE_SERVICE_RESTART) for sock in sockets), return_exceptions=True)
        await asyncio.sleep(0.1)
        if hand_over:
            self._hand_over()

    def _hand_over(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_signal_handler(signal.SIGTERM)
        previous = self._previous
        if callable(previous):
            previous(signal.SIGTERM, None)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)


_lifecycles: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Lifecycle] = weakref.WeakKeyDictionary()


def get_lifecycle() -> Lifecycle:
    loop = asyncio.get_running_loop()
    lifecycle = _lifecycles.get(loop)
    if lifecycle is None:
        lifecycle = _lifecycles[loop] = Lifecycle(loop)
        for hook in _loop_hooks:
            hook(loop)
    return lifecycle
