"""Error capture: one row per distinct error, exact counts under concurrency, triage states, no secrets."""

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from errors_app import services
from errors_app.capture import capture_exception, flush_errors
from errors_app.fingerprint import fingerprint
from errors_app.models import ErrorInvestigation
from errors_app.occurrences import Pending

pytestmark = pytest.mark.django_db(transaction=True)


def fail_with(message: str) -> None:
    raise ValueError(message)


def fail_elsewhere(message: str) -> None:
    raise ValueError(message)


def capture(function: Any, message: str) -> None:
    try:
        function(message)
    except ValueError as exc:
        capture_exception(exc)


def test_errors_differing_only_in_volatile_parts_are_one_row() -> None:
    for message in [
        "user 7 not found in /tmp/abc/x.json",
        "user 8123 not found in /tmp/zzz/y.json",
        "user 9 not found in /tmp/q",
    ]:
        capture(fail_with, message)
    flush_errors()
    [error] = ErrorInvestigation.objects.all()
    assert error.occurrence_count == 3
    assert error.error_message == "user <n> not found in <tmp>"
    assert error.error_type == "ValueError"
    assert error.location == "tests/test_errors.py in fail_with"


def test_the_same_error_from_another_location_is_another_row() -> None:
    capture(fail_with, "boom")
    capture(fail_elsewhere, "boom")
    flush_errors()
    assert sorted(ErrorInvestigation.objects.values_list("location", flat=True)) == [
        "tests/test_errors.py in fail_elsewhere",
        "tests/test_errors.py in fail_with",
    ]


def test_ten_thousand_concurrent_occurrences_are_one_row_counted_exactly() -> None:
    stop = threading.Event()

    def capture_many() -> None:
        for index in range(1250):
            capture(fail_with, f"storm {index}")

    def flush_meanwhile() -> None:
        while not stop.is_set():
            flush_errors()

    flusher = threading.Thread(target=flush_meanwhile)
    flusher.start()
    workers = [threading.Thread(target=capture_many) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    flusher.join()
    flush_errors()
    [error] = ErrorInvestigation.objects.all()
    assert error.occurrence_count == 10_000


def test_concurrent_writers_of_one_error_never_lose_a_count() -> None:
    now = timezone.now()
    pending_hash = fingerprint("RuntimeError", "db race", "x.py in y")

    def write_batches() -> None:
        for _ in range(25):
            pending = Pending(pending_hash, "RuntimeError", "db race", "x.py in y", {}, now, now, count=10)
            services.error_record_occurrences(pending=pending)

    threads = [threading.Thread(target=write_batches) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [error] = ErrorInvestigation.objects.all()
    assert error.occurrence_count == 2_000
    assert error.current_hour_count == 2_000


def test_an_error_log_record_is_captured_too() -> None:
    logging.getLogger("exai.test").error("disk full writing /tmp/upload-81")
    flush_errors()
    error = ErrorInvestigation.objects.get()
    assert error.error_type == "log:exai.test"
    assert error.error_message == "disk full writing <tmp>"


def test_secrets_never_reach_the_stored_error(settings: Any) -> None:
    settings.KIMI_API_KEY = "sk-live-kimi-0123456789abcdef"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl"
    try:
        raise RuntimeError(f"auth failed for key {settings.KIMI_API_KEY} with Authorization: Bearer {jwt}")
    except RuntimeError as exc:
        capture_exception(exc, context={"api_key": "plain-secret", "headers": {"Authorization": "Bearer abc"}})
    flush_errors()
    stored = str(ErrorInvestigation.objects.values().get())
    for secret in (settings.KIMI_API_KEY, jwt, "plain-secret", "Bearer abc"):
        assert secret not in stored
    assert "<redacted>" in stored


def test_capture_never_raises_even_on_a_broken_exception() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("cannot print me")

    capture_exception(Unprintable())  # must not raise


def occur(error_hash: str, at: Any, count: int = 1) -> services.Recorded:
    return services.error_record_occurrences(
        pending=Pending(error_hash, "KeyError", "missing", "a.py in b", {}, at, at, count=count)
    )


def test_a_resolved_error_that_occurs_after_it_was_resolved_is_reopened_as_regressed() -> None:
    first = occur("h1", timezone.now())
    services.error_resolve(error_id=first.error_id, notes="fixed in 1.2")
    resolved_at = ErrorInvestigation.objects.get().resolved_at

    # An occurrence from before the resolution (a late flush of a burst) does not reopen it.
    late = occur("h1", resolved_at - timedelta(seconds=1))
    assert not late.regressed and ErrorInvestigation.objects.get().triage == "resolved"

    again = occur("h1", resolved_at + timedelta(seconds=1))
    error = ErrorInvestigation.objects.get()
    assert again.regressed and again.investigate
    assert (error.triage, error.substatus, error.resolved, error.status) == (
        "unresolved",
        "regressed",
        False,
        "pending",
    )


def test_a_spike_far_above_the_hourly_average_is_escalating(settings: Any) -> None:
    settings.EXAI_ESCALATION_MIN = 10
    now = timezone.now()
    occur("h2", now, count=5)
    assert ErrorInvestigation.objects.get().substatus == "new"
    occur("h2", now, count=20)
    assert ErrorInvestigation.objects.get().substatus == "escalating"


def test_an_error_older_than_seven_days_is_ongoing_not_new() -> None:
    occur("h3", timezone.now())
    ErrorInvestigation.objects.update(created_at=timezone.now() - timedelta(days=8))
    occur("h3", timezone.now())
    assert ErrorInvestigation.objects.get().substatus == "ongoing"


def test_investigation_is_asked_for_once_the_threshold_is_crossed(settings: Any) -> None:
    settings.EXAI_INVESTIGATE_AFTER = 3
    now = timezone.now()
    assert [occur("h4", now).investigate for _ in range(4)] == [False, False, True, False]
