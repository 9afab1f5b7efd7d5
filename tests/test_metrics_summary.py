"""/api/metrics/summary/: percentiles from the rollups within 1 % of the exact ones, staff only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from metrics_app.models import LatencySample
from metrics_app.rollups import write_samples
from metrics_app.services import metrics_summary, percentile
from metrics_app.sketches import RELATIVE_ACCURACY

pytestmark = pytest.mark.django_db(transaction=True)

# DDSketch's bound, inclusive: a value on a bin's edge is answered exactly 1 % away.
ACCURACY = RELATIVE_ACCURACY * (1 + 1e-9)


def samples(
    tool: str, values: range, *, provider: str = "kimi", status: str = "ok", age: timedelta = timedelta()
) -> None:
    write_samples(
        [
            LatencySample(
                tool=tool,
                provider=provider,
                model=f"{provider}-model",
                request_id=f"{tool}-{value}",
                status=status,
                total_latency_ms=float(value),
                processing_ms=float(value) / 2,
                overhead_ms=1.0,
                ttft_ms=None if value % 2 else float(value),
                created=timezone.now() - age,
            )
            for value in values
        ]
    )


def staff_client(admin_user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def test_percentiles_are_within_one_percent_on_a_known_distribution() -> None:
    samples("chat", range(1, 101))
    summary = metrics_summary(window=timedelta(hours=1), group=[])
    assert summary["count"] == 100 and summary["error_rate"] == 0.0
    # The value at rank q * (n - 1), rounded down (percentile_cont interpolates up from it).
    assert summary["latency"]["total_latency_ms"] == {
        "p50": pytest.approx(50, rel=ACCURACY),
        "p95": pytest.approx(95, rel=ACCURACY),
        "p99": pytest.approx(99, rel=ACCURACY),
    }
    assert summary["latency"]["processing_ms"] == {
        "p50": pytest.approx(25, rel=ACCURACY),
        "p95": pytest.approx(47.5, rel=ACCURACY),
        "p99": pytest.approx(49.5, rel=ACCURACY),
    }
    assert summary["latency"]["overhead_ms"]["p99"] == pytest.approx(1.0, rel=ACCURACY)
    # ttft is only known for even values: 2..100
    assert summary["latency"]["ttft_ms"]["p50"] == pytest.approx(50, rel=ACCURACY)


def test_the_python_fallback_agrees_with_sql_percentile_cont() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    assert percentile(values, 0.5) == pytest.approx(2.8)
    assert percentile(values, 0.95) == pytest.approx(7.75)
    assert percentile([], 0.5) is None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v), percentile_cont(0.95) WITHIN GROUP (ORDER BY v)"
                " FROM unnest(%s::float8[]) AS v",
                [values],
            )
            assert cursor.fetchone() == pytest.approx((percentile(values, 0.5), percentile(values, 0.95)))


def test_groups_error_rates_and_the_window() -> None:
    samples("chat", range(1, 11))
    samples("chat", range(11, 21), provider="glm", status="provider_error")
    samples("status", range(1, 5))
    samples("chat", range(100, 200), age=timedelta(hours=2))  # outside the window
    summary = metrics_summary(window=timedelta(hours=1), group=["tool", "provider"])
    assert summary["count"] == 24 and summary["error_rate"] == round(10 / 24, 4)
    groups = {(g["tool"], g["provider"]): g for g in summary["groups"]}
    assert set(groups) == {("chat", "glm"), ("chat", "kimi"), ("status", "kimi")}
    assert groups[("chat", "glm")]["error_rate"] == 1.0 and groups[("chat", "kimi")]["count"] == 10
    assert groups[("chat", "kimi")]["latency"]["total_latency_ms"]["p50"] == pytest.approx(5, rel=ACCURACY)


def test_the_endpoint_is_for_staff_only(user: Any) -> None:
    assert APIClient().get("/api/metrics/summary/").status_code == 401
    client = APIClient()
    client.force_authenticate(user)
    assert client.get("/api/metrics/summary/").status_code == 403


def test_the_endpoint_groups_by_tool_provider_and_model_by_default(admin_user: Any) -> None:
    samples("chat", range(1, 5))
    body = staff_client(admin_user).get("/api/metrics/summary/?window=15m").json()
    assert body["window"] == "15m" and body["count"] == 4
    assert [(g["tool"], g["provider"], g["model"]) for g in body["groups"]] == [("chat", "kimi", "kimi-model")]


def test_the_endpoint_computes_only_the_parts_asked_for(admin_user: Any) -> None:
    samples("chat", range(1, 5))
    body = staff_client(admin_user).get("/api/metrics/summary/?parts=total_latency_ms,processing_ms").json()
    assert set(body["latency"]) == {"total_latency_ms", "processing_ms"}
    assert body["latency"]["total_latency_ms"]["p50"] == pytest.approx(2, rel=ACCURACY)


@pytest.mark.parametrize("query", ["window=1y", "window=0h", "window=abc", "group=user", "parts=speed", "parts=,"])
def test_a_bad_window_or_group_is_a_clear_400(admin_user: Any, query: str) -> None:
    response = staff_client(admin_user).get(f"/api/metrics/summary/?{query}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_the_summary_costs_the_same_queries_for_one_group_or_many(admin_user: Any) -> None:
    client = staff_client(admin_user)
    # One clock for the whole test: a minute turning between the two reads would advance the
    # sliding hour (a few queries more), which is not what is measured here.
    with mock.patch.object(timezone, "now", return_value=timezone.now()):
        samples("chat", range(1, 5))
        client.get("/api/metrics/summary/")  # the first reader sums the sliding hour
        with CaptureQueriesContext(connection) as one:
            assert len(client.get("/api/metrics/summary/").json()["groups"]) == 1
        for index in range(8):
            samples(f"tool{index}", range(1, 5), provider=f"p{index}")
        with CaptureQueriesContext(connection) as many:
            assert len(client.get("/api/metrics/summary/").json()["groups"]) == 9
    assert len(many) == len(one)


def test_cleanup_metrics_deletes_old_samples_in_batches_and_keeps_the_rest(capsys: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    samples("chat", range(1, 26), age=timedelta(days=40))
    samples("chat", range(26, 31))
    out = StringIO()
    call_command("cleanup_metrics", "--older-than-days", "30", "--dry-run", stdout=out)
    assert "would delete 25 latency samples" in out.getvalue() and LatencySample.objects.count() == 30
    call_command("cleanup_metrics", "--older-than-days", "30", "--batch", "10", stdout=out)
    assert "deleted 25 latency samples" in out.getvalue()
    progress = capsys.readouterr().err  # tqdm's bar, batch by batch
    assert "100%" in progress and "25.0/25.0" in progress and "sample/s" in progress
    assert sorted(LatencySample.objects.values_list("total_latency_ms", flat=True)) == [26, 27, 28, 29, 30]


def test_the_samples_admin_lists_them_read_only(admin_user: Any) -> None:
    from django.test import Client

    samples("chat", range(1, 4))
    client = Client()
    client.force_login(admin_user)
    assert client.get("/admin/metrics_app/latencysample/").status_code == 200
    assert client.get("/admin/metrics_app/latencysample/add/").status_code == 403
