"""Record one sample per tool call without slowing the call: an append, written in batches.

The caller only builds the row and appends it to a buffer (and updates the Prometheus
series, in memory). A writer thread wakes every EXAI_METRICS_FLUSH_S, or as soon as a
batch is full, and writes what is buffered with `bulk_create`, together with the minute and
hour rollups the summaries and the dashboard read (metrics_app/rollups.py). The server's shutdown
flushes what is left (a lifecycle hook), and so does a normal interpreter exit, so a
clean stop loses no sample.
"""

from __future__ import annotations

import atexit
import logging
import threading

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from exai_site.outages import unreachable_service
from exai_site.text import storable_text
from metrics_app import prometheus
from metrics_app.models import LatencySample
from metrics_app.rollups import MetricsTablesBusy, write_samples
from tools_app.observers import CallSample

logger = logging.getLogger(__name__)


class SampleBuffer:
    def __init__(self) -> None:
        self._items: list[LatencySample] = []
        self.dropped = 0  # past EXAI_METRICS_BACKLOG while the database was away
        self.holding = False  # samples are held for a database that is away
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one writer at a time: the thread, shutdown or a test
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, sample: LatencySample) -> None:
        with self._lock:
            self._items.append(sample)
            full = len(self._items) >= settings.EXAI_METRICS_BATCH
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    def take(self) -> list[LatencySample]:
        with self._lock:
            items, self._items = self._items, []
        return items

    def flush(self) -> int:
        """Write everything buffered now; return how many samples were written."""
        with self._flush_lock:
            items = self.take()
            if not items:
                return 0
            try:
                write_samples(items)  # the raw rows and their rollups, one transaction
            except MetricsTablesBusy:
                # A schema change or a TRUNCATE holds the tables: the next flush tries again.
                self._keep_for_later(items, why="the metrics tables are held (a schema change?)")
                return 0
            except Exception as exc:
                if unreachable_service(exc) is not None:
                    self._keep_for_later(items)
                    return 0
                # One bad row must not lose the others: write them one by one, dropping only it.
                logger.warning("could not write %d latency samples at once; one by one", len(items), exc_info=True)
                return sum(self._write_one(item) for item in items)
            if self.holding:
                logger.warning(
                    "the database is back; latency samples written, %d dropped meanwhile (EXAI_METRICS_BACKLOG)",
                    self.dropped,
                )
                self.holding, self.dropped = False, 0
            return len(items)

    def _keep_for_later(self, items: list[LatencySample], why: str = "the database is unreachable") -> None:
        """The samples cannot be written now: hold them for the next flush, the oldest dropped past the bound."""
        with self._lock:
            kept = items + self._items
            over = len(kept) - settings.EXAI_METRICS_BACKLOG
            if over > 0:
                del kept[:over]
                self.dropped += over
            self._items = kept
        if not self.holding:
            logger.warning("%s; latency samples are held for the next flush", why)
        self.holding = True

    @staticmethod
    def _write_one(sample: LatencySample) -> int:
        try:
            write_samples([sample])
        except Exception:
            logger.warning("dropped a latency sample that could not be written", exc_info=True)
            return 0
        return 1

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="exai-metrics-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=settings.EXAI_METRICS_FLUSH_S)
            self._wake.clear()
            self.flush()
            close_old_connections()  # honours CONN_MAX_AGE for this thread's connection


buffer = SampleBuffer()
atexit.register(buffer.flush)


def record_call(call: CallSample) -> None:
    """Buffer one call's sample and count it in Prometheus; never raises into the call."""
    try:
        metrics = call.metrics
        total = metrics["total_latency_ms"]
        waits = sum(metrics.get(part, 0.0) for part in _WAITS)
        sample = LatencySample(
            tool=storable_text(call.tool[:64]),
            provider=call.provider or "",
            model=storable_text(call.model or ""),
            user_id=call.user_id if isinstance(call.user_id, int) else None,
            request_id=storable_text(str(call.request_id)[:200]),
            status=call.status,
            total_latency_ms=total,
            global_sem_wait_ms=metrics.get("global_sem_wait_ms", 0.0),
            provider_sem_wait_ms=metrics.get("provider_sem_wait_ms", 0.0),
            processing_ms=metrics.get("processing_ms", 0.0),
            ttft_ms=call.ttft_ms,
            overhead_ms=max(0.0, total - waits - metrics.get("processing_ms", 0.0)),
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            cached_tokens=call.cached_tokens,
            reasoning_tokens=call.reasoning_tokens,
            cost_usd=call.cost_usd,
            bytes_in=call.bytes_in,
            bytes_out=call.bytes_out,
            cache_hit=call.cache_hit,
            created=timezone.now(),
        )
        buffer.add(sample)
        prometheus.observe(sample)
    except Exception:
        logger.warning("could not record a latency sample", exc_info=True)


# Every wait a call can spend before or between its provider calls.
_WAITS = ("global_sem_wait_ms", "provider_sem_wait_ms", "user_sem_wait_ms", "conversation_wait_ms")


async def flush_on_shutdown() -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(buffer.flush, thread_sensitive=False)()
