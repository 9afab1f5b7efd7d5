"""Operators meet errors in the admin, the staff REST API and the live feed; nobody else does."""

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from errors_app import services
from errors_app.capture import capture_exception
from errors_app.models import ErrorInvestigation
from errors_app.occurrences import Pending
from tests.conftest import access_token
from tests.helpers import communicator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        username="ops", password="ops-password-123", is_staff=True, is_superuser=True
    )


def record(message: str, *, context: dict[str, Any] | None = None) -> int:
    now = timezone.now()
    pending = Pending(f"h-{message}", "RuntimeError", message, "tools_app/a.py in b", context or {}, now, now)
    return services.error_record_occurrences(pending=pending).error_id


def api(user: Any | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


def test_the_rest_api_refuses_anonymous_and_non_staff_callers(user: Any) -> None:
    error_id = record("x")
    assert api(None).get("/api/errors/").status_code == 401
    for path in ("/api/errors/", f"/api/errors/{error_id}/"):
        response = api(user).get(path)
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert api(user).post(f"/api/errors/{error_id}/", {"action": "resolve"}, format="json").status_code == 403


def test_staff_list_filter_and_search_errors(staff: Any) -> None:
    first, second = record("disk full"), record("socket closed")
    services.error_resolve(error_id=first)
    listing = api(staff).get("/api/errors/", {"triage": "unresolved"}).json()["errors"]
    assert [e["id"] for e in listing] == [second]
    found = api(staff).get("/api/errors/", {"search": "disk"}).json()["errors"]
    assert [(e["id"], e["triage"]) for e in found] == [(first, "resolved")]
    bad = api(staff).get("/api/errors/", {"triage": "sideways"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


def test_staff_resolve_and_reopen_an_error_through_the_api(staff: Any) -> None:
    error_id = record("timeout talking to glm")
    resolved = api(staff).post(
        f"/api/errors/{error_id}/", {"action": "resolve", "resolution_notes": "retry added"}, format="json"
    )
    assert resolved.json()["triage"] == "resolved" and resolved.json()["resolution_notes"] == "retry added"
    reopened = api(staff).post(f"/api/errors/{error_id}/", {"action": "reopen"}, format="json").json()
    assert (reopened["triage"], reopened["resolved"]) == ("unresolved", False)
    assert api(staff).get("/api/errors/999999/").status_code == 404


def test_the_admin_lists_unresolved_errors_by_default_and_resolves_in_bulk(staff: Any) -> None:
    open_id, done_id = record("still broken"), record("long fixed")
    services.error_resolve(error_id=done_id)
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/errors_app/errorinvestigation/").content.decode()
    assert "still broken" in page and "long fixed" not in page
    assert "long fixed" in client.get("/admin/errors_app/errorinvestigation/?triage=all").content.decode()
    client.post(
        "/admin/errors_app/errorinvestigation/",
        {"action": "resolve", "_selected_action": [open_id], "index": 0},
    )
    assert ErrorInvestigation.objects.get(pk=open_id).triage == "resolved"


def test_the_admin_detail_shows_the_trace_and_the_ai_answer_readably(staff: Any) -> None:
    error_id = record("readable", context={"stack_trace": "Traceback (most recent call last):\n  boom"})
    ErrorInvestigation.objects.filter(pk=error_id).update(
        investigation_result={"root_cause": "the pool was exhausted", "evidence": [], "confidence": "high"},
        fix_recommendation={"fix_steps": ["use a blocking pool"], "code_suggestion": "BlockingConnectionPool(...)"},
    )
    client = Client()
    client.force_login(staff)
    page = client.get(f"/admin/errors_app/errorinvestigation/{error_id}/change/").content.decode()
    assert "<pre" in page and "Traceback (most recent call last):" in page
    assert "<li>use a blocking pool</li>" in page and "<p>the pool was exhausted</p>" in page
    assert "<code>BlockingConnectionPool(...)" in page and '"root_cause"' not in page  # not raw JSON


def test_the_ai_answer_is_markdown_rendered_and_sanitised(staff: Any) -> None:
    error_id = record("hostile answer")
    ErrorInvestigation.objects.filter(pk=error_id).update(
        status="investigated",
        investigation_result={
            "root_cause": "The **pool** ran dry <script>alert(1)</script> [see](javascript:alert(2))",
            "evidence": ["`redis.get` timed out", "<img src=x onerror=alert(3)>"],
            "confidence": "medium",
        },
        fix_recommendation={"fix_steps": ["raise `max_connections`"], "code_suggestion": "pool = Pool(max=64)"},
    )
    client = Client()
    client.force_login(staff)
    page = client.get(f"/admin/errors_app/errorinvestigation/{error_id}/change/").content.decode()
    assert "<strong>pool</strong>" in page and "<code>redis.get</code>" in page
    assert "<strong>Confidence:</strong> medium" in page and "<code>max_connections</code>" in page
    assert "<script>alert(1)" not in page and 'href="javascript' not in page and "<img" not in page


def test_a_failed_investigation_shows_as_a_failure_not_as_a_root_cause(staff: Any) -> None:
    error_id = record("could not investigate")
    ErrorInvestigation.objects.filter(pk=error_id).update(
        status="failed", investigation_result={"error": "answer was not JSON", "raw": "I think it is the pool"}
    )
    client = Client()
    client.force_login(staff)
    page = client.get(f"/admin/errors_app/errorinvestigation/{error_id}/change/").content.decode()
    assert "The investigation failed:</strong> answer was not JSON" in page
    assert "<details><summary>the model's reply</summary>" in page and "I think it is the pool" in page


def test_the_errors_own_page_resolves_ignores_and_reopens_it(staff: Any) -> None:
    error_id = record("triage me")
    client = Client()
    client.force_login(staff)
    url = f"/admin/errors_app/errorinvestigation/{error_id}/change/"
    page = client.get(url).content.decode()
    assert 'name="_triage_resolve"' in page and 'name="_triage_ignore"' in page and "_triage_reopen" not in page
    done = client.post(url, {"resolution_notes": "pool raised to 64", "_triage_resolve": "Resolve"})
    assert done.status_code == 302 and done["Location"] == url
    error = ErrorInvestigation.objects.get(pk=error_id)
    assert (error.triage, error.resolution_notes, error.resolved) == ("resolved", "pool raised to 64", True)
    assert 'name="_triage_reopen"' in client.get(url).content.decode()
    client.post(url, {"resolution_notes": "pool raised to 64", "_triage_reopen": "Reopen"})
    assert ErrorInvestigation.objects.get(pk=error_id).triage == "unresolved"
    client.post(url, {"resolution_notes": "", "_triage_ignore": "Ignore"})
    assert ErrorInvestigation.objects.get(pk=error_id).triage == "ignored"


def test_the_admin_refuses_non_staff(user: Any) -> None:
    client = Client()
    client.force_login(user)
    assert client.get("/admin/errors_app/errorinvestigation/").status_code == 302


async def test_the_live_feed_streams_new_errors_to_staff(staff: Any) -> None:
    from errors_app.capture import flush_and_dispatch

    comm = communicator("/ws/errors", token=access_token(staff))
    assert (await comm.connect())[0]
    try:
        raise RuntimeError("feed me")
    except RuntimeError as exc:
        capture_exception(exc)
    await flush_and_dispatch()
    message = await comm.receive_json_from(timeout=5)
    assert (message["op"], message["event"]) == ("error_occurred", "new")
    assert message["error"]["error_message"] == "feed me" and message["error"]["occurrence_count"] == 1
    await comm.disconnect()


@pytest.mark.parametrize("who", ["anonymous", "non-staff"])
async def test_the_live_feed_refuses_anyone_but_staff(user: Any, who: str) -> None:
    comm = communicator("/ws/errors", token=None if who == "anonymous" else access_token(user))
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["error"]["code"] == "forbidden"
    assert (await comm.receive_output())["code"] == 4403


def test_a_failed_rest_call_is_one_error_not_also_a_django_request_line(user: Any, stub: Any) -> None:
    from errors_app.capture import flush_errors

    response = api(user).post(
        "/api/tools/chat/call/", {"arguments": {"prompt": "x [[stub:status=500]]"}}, format="json"
    )
    assert response.status_code >= 500
    flush_errors()
    types = list(ErrorInvestigation.objects.values_list("error_type", flat=True))
    assert types == ["tools_app.providers.base.ProviderError"], types


def test_a_library_log_line_is_located_by_its_logger_and_keeps_its_real_message() -> None:
    import logging

    from errors_app.capture import capture_log_record, flush_errors

    record = logging.LogRecord(
        "httpx_like.pool",
        logging.ERROR,
        "/usr/lib/python3/site-packages/httpx_like/pool.py",
        42,
        "pool of %d exhausted for tenant %s",
        (64, "acme-7"),
        None,
        func="acquire",
    )
    capture_log_record(record)
    flush_errors()
    error = ErrorInvestigation.objects.get()
    assert error.location == "logger httpx_like.pool"
    assert error.error_context["message"] == "pool of 64 exhausted for tenant acme-7"


def test_the_error_page_shows_the_latest_real_message_and_occurrences_by_hour(staff: Any) -> None:
    now = timezone.now()
    pending = Pending(
        "h-chart",
        "RuntimeError",
        "pool of <n> exhausted",
        "tools_app/a.py in b",
        {"message": "pool of 64 exhausted"},
        now,
        now,
        count=3,
    )
    error_id = services.error_record_occurrences(pending=pending).error_id
    services.error_record_occurrences(
        pending=Pending(
            "h-chart",
            "RuntimeError",
            "pool of <n> exhausted",
            "tools_app/a.py in b",
            {"message": "pool of 65 exhausted"},
            now,
            now,
        )
    )
    assert services.error_occurrences_by_hour(error_id=error_id, hours=2)[-1][1] == 4
    client = Client()
    client.force_login(staff)
    page = client.get(f"/admin/errors_app/errorinvestigation/{error_id}/change/").content.decode()
    assert "pool of 65 exhausted" in page and "pool of &lt;n&gt; exhausted" in page
    assert "occurrences, last 48 hours (utc)" in page.lower() and page.count("<rect") == 48
    assert "UTC: 4</title>" in page and "highest 4 an hour" in page
    assert 'href="/dashboard/"' in client.get("/admin/").content.decode()  # the admin links to the dashboard
