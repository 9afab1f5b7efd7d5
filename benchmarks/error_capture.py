"""What capturing an error costs the caller, and how many occurrences a storm can sustain.

Prints, nothing asserted:
  * capture_exception on the caller's path, in microseconds: an error already pending in
    this batch (a counter increment) and the first of a batch (which also builds its
    context: stack trace, recent log lines, scrubbing);
  * a storm: 4 threads raising and capturing as fast as they can for 3 s while a flusher
    writes batches to the database: occurrences/s captured, and every one counted.

    python benchmarks/error_capture.py        (a temporary SQLite, or DATABASE_URL)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, percentiles


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exai_site.settings")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='exai-bench-')}/errors.sqlite3")
    os.environ["EXAI_LOG_LEVEL"] = "WARNING"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    import django

    django.setup()


def fail(index: int) -> None:
    raise KeyError(f"session {index} expired")


def caller_cost(rounds: int) -> tuple[list[float], list[float]]:
    from errors_app.capture import capture_exception, take_pending

    repeat, first = [], []
    for index in range(rounds):
        try:
            fail(index)
        except KeyError as exc:
            started = time.perf_counter()
            capture_exception(exc)
            elapsed = (time.perf_counter() - started) * 1e6
        (first if index % 100 == 0 else repeat).append(elapsed)
        if index % 100 == 99:
            take_pending()  # start a new batch: the next capture is a first again
    take_pending()
    return repeat, first


def storm(seconds: float = 3.0, threads: int = 4) -> tuple[int, float, int]:
    from errors_app.capture import capture_exception, flush_errors
    from errors_app.models import ErrorInvestigation

    ErrorInvestigation.objects.all().delete()
    captured = [0] * threads
    stop = threading.Event()

    def raise_and_capture(slot: int) -> None:
        index = 0
        while not stop.is_set():
            try:
                fail(index)
            except KeyError as exc:
                capture_exception(exc)
            captured[slot] += 1
            index += 1

    def flusher() -> None:
        while not stop.is_set():
            flush_errors()
            time.sleep(0.05)

    workers = [threading.Thread(target=raise_and_capture, args=(slot,)) for slot in range(threads)]
    writer = threading.Thread(target=flusher)
    started = time.perf_counter()
    for thread in [*workers, writer]:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in [*workers, writer]:
        thread.join()
    flush_errors()
    elapsed = time.perf_counter() - started
    stored = sum(ErrorInvestigation.objects.values_list("occurrence_count", flat=True))
    return sum(captured), elapsed, stored


def main() -> None:
    setup()
    repeat, first = caller_cost(20_000)
    print("\ncapture_exception on the caller's path, microseconds      p50       p95       p99")
    for label, values in (("already pending in the batch", repeat), ("first of a batch", first)):
        p50, p95, p99 = percentiles(values)
        print(f"  {label:<40} {p50:9.1f} {p95:9.1f} {p99:9.1f}")
    captured, elapsed, stored = storm()
    print(
        f"\nstorm: {captured:,} occurrences in {elapsed:.1f}s = {captured / elapsed:,.0f}/s captured; "
        f"{stored:,} counted in the database ({'all' if stored == captured else 'MISSING SOME'})"
    )


if __name__ == "__main__":
    main()
