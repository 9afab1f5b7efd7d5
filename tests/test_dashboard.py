"""/dashboard/ and /ws/dashboard: staff only, constant queries, live updates; and in a real browser."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exai_site.asgi import application
from exai_site.cache import owned_key
from exai_site.models import IssuedToken
from metrics_app.dashboard import _database_part, dashboard_snapshot, forget_shared_snapshot, shared_database_part
from metrics_app.models import LatencySample
from metrics_app.recorder import buffer
from metrics_app.rollups import write_samples
from tests.conftest import ROOT, ServerProcess, access_token, server_env
from tools_app.services import tool_call

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(autouse=True)
def fresh_snapshot() -> None:
    """Each test computes its own snapshot (another test's may still be shared in the cache)."""
    async_to_sync(forget_shared_snapshot)()


def add_samples(tool: str, provider: str, count: int, at: datetime | None = None) -> None:
    write_samples(
        [
            LatencySample(
                tool=tool,
                provider=provider,
                model="m",
                request_id=uuid.uuid4().hex,
                total_latency_ms=float(i + 1),
                created=at or timezone.now(),
            )
            for i in range(count)
        ]
    )


def test_the_page_is_for_staff_only(user: Any, admin_user: Any) -> None:
    assert Client().get("/dashboard/").status_code == 302  # to the admin login
    client = Client()
    client.force_login(user)
    assert client.get("/dashboard/").status_code == 302
    client.force_login(admin_user)
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert b"vendor/uplot/uPlot.iife.min.js" in page.content and b'id="dashboard-config"' in page.content


def test_the_vendored_chart_library_and_its_licence_are_served_by_the_app(admin_user: Any) -> None:
    from django.contrib.staticfiles import finders

    assert finders.find("vendor/uplot/uPlot.iife.min.js") and finders.find("vendor/uplot/LICENSE")
    assert "MIT" in Path(finders.find("vendor/uplot/LICENSE")).read_text()


def test_a_snapshot_costs_the_same_queries_for_one_tool_or_many() -> None:
    now = timezone.now()  # one clock: the sliding windows are summed once, before measuring
    add_samples("chat", "kimi", 5, at=now)
    _database_part(now)
    with CaptureQueriesContext(connection) as one:
        first = _database_part(now)
    for index in range(8):
        add_samples(f"tool{index}", f"p{index}", 3, at=now)
    with CaptureQueriesContext(connection) as many:
        second = _database_part(now)
    assert len(many) == len(one)
    assert sum(first["series"]["calls"]) == 5 and sum(second["series"]["calls"]) == 29
    assert len(second["tools"]) == 9 and len(second["series"]["p95_by_provider"]) == 9
    # The last day too: per hour, and the day's summaries.
    assert sum(second["series_day"]["calls"]) == 29 and len(second["series_day"]["minutes"]) == 24
    assert len(second["tools_day"]) == 9 and len(second["providers_day"]) == 9


async def test_a_snapshot_shows_calls_errors_throttle_circuits_process_and_files(user: Any) -> None:
    await tool_call(user=user, name="chat", arguments={"prompt": "hi"}, request_id=uuid.uuid4().hex)
    await tool_call(user=user, name="chat", arguments={"prompt": "x [[stub:status=400]]"}, request_id=uuid.uuid4().hex)
    await sync_to_async(buffer.flush)()
    snapshot = await dashboard_snapshot()
    assert sum(snapshot["series"]["calls"]) == 2 and sum(snapshot["series"]["errors"]) == 1
    assert snapshot["providers"][0]["provider"] == "kimi" and snapshot["providers"][0]["error_rate"] == 0.5
    assert snapshot["series"]["p95_by_provider"]["kimi"][-1] > 0
    assert snapshot["throttle"]["providers"]["kimi"]["limit"] == 6
    assert snapshot["circuits"]["kimi"]["state"] == "closed"
    assert snapshot["process"]["pid"] == os.getpid() and snapshot["process"]["rss_bytes"] > 0
    assert snapshot["files"]["blobs"] == 0 and snapshot["files"]["last_cleanup"] is None
    assert snapshot["series"]["wait_mean_ms"][-1] is not None and snapshot["series"]["wait_max_ms"][-1] >= 0


async def test_the_database_part_is_computed_once_per_refresh_and_shared(settings: Any) -> None:
    settings.EXAI_DASHBOARD_INTERVAL_S = 30
    now = timezone.now()
    first = await shared_database_part(now)
    assert first["database_at"] == now.isoformat()
    # Another process (or this one) within the interval gets the same figures from the cache.
    assert await shared_database_part(now + timedelta(seconds=10)) == first
    # Another process took the lease to compute the next ones: meanwhile the last are served.
    await cache.aadd(owned_key("dashboard", "exai:dashboard:database:lease"), 1, timeout=30)
    assert (await shared_database_part(now + timedelta(seconds=40)))["database_at"] == now.isoformat()
    # Past the lease, the next reader computes them afresh.
    await cache.adelete(owned_key("dashboard", "exai:dashboard:database:lease"))
    fresh = await shared_database_part(now + timedelta(seconds=45))
    assert fresh["database_at"] == (now + timedelta(seconds=45)).isoformat()


def test_the_errors_panel_lists_what_wants_a_look_latest_first() -> None:
    from errors_app.models import ErrorInvestigation

    now = timezone.now()

    def error(name: str, substatus: str, triage: str = "unresolved", minutes_ago: int = 0) -> None:
        ErrorInvestigation.objects.create(
            error_hash=name,
            error_type=name,
            error_message=f"{name} happened",
            location="x.py in f",
            substatus=substatus,
            triage=triage,
            last_occurrence_at=now - timedelta(minutes=minutes_ago),
        )

    error("Escalating", "escalating", minutes_ago=1)
    error("Regressed", "regressed", minutes_ago=0)
    error("New", "new", minutes_ago=2)
    error("Ongoing", "ongoing")
    error("Ignored", "new", triage="ignored")
    listed = _database_part(now)["errors"]
    assert [(e["type"], e["substatus"]) for e in listed] == [
        ("Regressed", "regressed"),
        ("Escalating", "escalating"),
        ("New", "new"),
    ]


async def test_the_socket_refuses_non_staff_and_sends_staff_live_snapshots(
    user: Any, admin_user: Any, settings: Any
) -> None:
    refused = WebsocketCommunicator(application, f"/ws/dashboard?token={access_token(user)}")
    await refused.connect()
    assert (await refused.receive_json_from())["error"]["code"] == "forbidden"
    assert (await refused.receive_output())["code"] == 4403

    settings.EXAI_DASHBOARD_INTERVAL_S = 0.1
    watcher = WebsocketCommunicator(application, f"/ws/dashboard?token={access_token(admin_user)}")
    await watcher.connect()
    try:
        first = await watcher.receive_json_from(timeout=5)
        assert first["op"] == "snapshot" and sum(first["snapshot"]["series"]["calls"]) == 0
        await tool_call(user=user, name="version", arguments={}, request_id=uuid.uuid4().hex)
        await sync_to_async(buffer.flush)()
        async with asyncio.timeout(5):
            while sum((await watcher.receive_json_from(timeout=5))["snapshot"]["series"]["calls"]) != 1:
                pass
    finally:
        await watcher.disconnect()


async def test_the_page_carries_no_token_and_its_feed_follows_the_admin_session(admin_user: Any, settings: Any) -> None:
    settings.EXAI_TOKEN_RECHECK_S = 0.1
    client = Client()
    await sync_to_async(client.force_login)(admin_user)
    page = await sync_to_async(client.get)("/dashboard/")
    assert page.status_code == 200 and b"eyJ" not in page.content  # no JWT of any kind in the page
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    watcher = WebsocketCommunicator(application, "/ws/dashboard", headers=[(b"cookie", cookie.encode())])
    await watcher.connect()
    try:
        assert (await watcher.receive_json_from(timeout=5))["op"] == "snapshot"
        await sync_to_async(client.logout)()
        async with asyncio.timeout(5):
            while (message := await watcher.receive_json_from(timeout=5))["op"] == "snapshot":
                pass
        assert message["error"]["code"] == "unauthorized"
        assert (await watcher.receive_output())["code"] == 4401
    finally:
        await watcher.disconnect()


@pytest.mark.parametrize("path", ["/ws/dashboard", "/ws/errors"])
async def test_a_staff_feed_ends_when_its_token_is_revoked_or_its_user_loses_staff(
    admin_user: Any, settings: Any, path: str
) -> None:
    settings.EXAI_TOKEN_RECHECK_S = 0.1
    out = StringIO()
    await sync_to_async(call_command)("issue_token", admin_user.username, stdout=out)
    token = out.getvalue().strip()

    async def ended_with(revoke: Any) -> tuple[str, int]:
        feed = WebsocketCommunicator(application, f"{path}?token={token}")
        await feed.connect()
        try:
            await asyncio.sleep(0.3)  # a few rechecks pass while the credentials hold: served, not refused
            while not await feed.receive_nothing(timeout=0.1):
                assert (await feed.receive_json_from())["op"] != "error"
            await sync_to_async(revoke)()
            async with asyncio.timeout(5):
                while (message := await feed.receive_json_from(timeout=5))["op"] != "error":
                    pass
            return message["error"]["code"], (await feed.receive_output())["code"]
        finally:
            await feed.disconnect()

    def lose_staff() -> None:
        type(admin_user).objects.filter(pk=admin_user.pk).update(is_staff=False)

    assert await ended_with(lose_staff) == ("forbidden", 4403)
    await sync_to_async(type(admin_user).objects.filter(pk=admin_user.pk).update)(is_staff=True)
    assert await ended_with(lambda: IssuedToken.objects.revoke()) == ("unauthorized", 4401)


@pytest.fixture
def quiet_server(django_db_blocker: Any, provider_stub: Any, file_root: Path) -> Iterator[ServerProcess]:
    """A server whose failed call starts no AI investigation (whose own call would show on the page too)."""
    env = server_env(django_db_blocker, provider_stub, file_root, EXAI_INVESTIGATE_AFTER="1000000")
    process = ServerProcess(env).start()
    yield process
    process.stop()


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (make test installs Debian's chromium)")
def test_the_dashboard_renders_charts_with_data_and_updates_live_in_chromium(
    quiet_server: ServerProcess, django_user_model: Any, user: Any
) -> None:
    from playwright.sync_api import sync_playwright

    server = quiet_server

    from django.contrib.auth.hashers import make_password

    # The server process checks the password with the real hashers (tests/conftest.py).
    ops = django_user_model.objects.create_superuser("ops")
    ops.password = make_password("ops-password-123", hasher="pbkdf2_sha256")
    ops.save(update_fields=["password"])
    headers = {"Authorization": f"Bearer {access_token(user)}"}
    for prompt in ("one", "two", "three [[stub:status=500]]"):
        httpx.post(f"{server.http_url}/api/tools/chat/call/", json={"arguments": {"prompt": prompt}}, headers=headers)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{server.http_url}/admin/login/?next=/dashboard/")
            page.fill("#id_username", "ops")
            page.fill("#id_password", "ops-password-123")
            page.click("input[type=submit]")
            page.wait_for_url("**/dashboard/")
            page.wait_for_function("Number(document.getElementById('status').dataset.updates) >= 1", timeout=15_000)
            for chart in ("calls-chart", "latency-chart", "waits-chart"):
                assert page.locator(f"#{chart} canvas").count() == 1
            assert "kimi" in page.inner_text("#latency-chart")  # the provider's series is in the legend
            # Its latest value shows without hovering, in ms.
            legend = page.inner_text("#latency-chart .u-legend")
            assert re.search(r"kimi\s*[\d.]+ ms", legend), legend
            assert "UTC" in page.inner_text("#latency-chart .u-legend") and "UTC" in page.inner_text("#status")
            tools = page.evaluate(
                "Array.from(document.querySelectorAll('#tools tr td:first-child')).map(t => t.textContent)"
            )
            assert tools == ["chat"]
            calls = page.evaluate("Array.from(document.querySelectorAll('#providers td')).map(t => t.textContent)")
            assert "3" in calls and "33.3%" in calls
            # The failed call's error is in the panel, linked to its page in the admin.
            page.wait_for_function("document.querySelectorAll('#errors a').length >= 1", timeout=15_000)
            assert "/admin/errors_app/errorinvestigation/" in page.get_attribute("#errors a", "href")
            # One colour per provider: the table's swatch is the chart's line colour.
            assert page.evaluate("getComputedStyle(document.querySelector('#providers .swatch')).backgroundColor") == (
                "rgb(9, 105, 218)"
            )
            # A live update arrives without reloading: a new call, then the next snapshot shows it.
            httpx.post(
                f"{server.http_url}/api/tools/chat/call/", json={"arguments": {"prompt": "four"}}, headers=headers
            )
            page.wait_for_function(
                "Array.from(document.querySelectorAll('#providers td')).some(t => t.textContent === '4')",
                timeout=15_000,
            )
            # What the calls cost: the chart, and the model's row in the spend table.
            assert page.locator("#spend-chart canvas").count() == 1
            spend = page.inner_text("#spend-models")
            assert "kimi" in spend and "$" in spend, spend
            # The last 24 hours: per hour, the same calls counted in the day's tables.
            page.click("button[data-range=day]")
            assert page.get_attribute("button[data-range=day]", "aria-pressed") == "true"
            assert "Calls per hour (last 24 hours, UTC)" in page.inner_text("main")
            assert "Providers (last 24 hours)" in page.inner_text("main")
            page.wait_for_function(
                "Array.from(document.querySelectorAll('#providers td')).some(t => t.textContent === '4')",
                timeout=15_000,
            )
            assert page.locator("#calls-chart canvas").count() == 1
            page.screenshot(path=str(ARTIFACTS / "dashboard-day-1440.png"), full_page=True)
            page.click("button[data-range=hour]")
            assert "Calls per minute (last hour, UTC)" in page.inner_text("main")
            for width in (1440, 420):
                page.set_viewport_size({"width": width, "height": 1000})
                page.wait_for_timeout(300)  # the charts redraw for the new width
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{overflow} px wider than a {width} px screen"
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"), full_page=True)
            # The error's own page (from the dashboard's panel) and the front page, at both widths.
            page.click("#errors a")
            page.wait_for_url("**/admin/errors_app/errorinvestigation/*/change/")
            assert page.locator("input[name=_triage_resolve]").count() == 1
            page.screenshot(path=str(ARTIFACTS / "error-page.png"), full_page=True)
            page.goto(f"{server.http_url}/")
            assert "Healthy" in page.inner_text("#health")
            for width in (1440, 420):
                page.set_viewport_size({"width": width, "height": 900})
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"the front page is {overflow} px wider than a {width} px screen"
                page.screenshot(path=str(ARTIFACTS / f"front-page-{width}.png"), full_page=True)
            assert problems == [], problems
        finally:
            browser.close()
    for name in (
        "dashboard-1440",
        "dashboard-420",
        "dashboard-day-1440",
        "error-page",
        "front-page-1440",
        "front-page-420",
    ):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 5_000


async def test_a_staff_feed_joins_its_group_again_when_the_channel_layer_forgot_it(
    admin_user: Any, settings: Any
) -> None:
    from channels.layers import get_channel_layer

    from errors_app.services import FEED_GROUP

    settings.EXAI_TOKEN_RECHECK_S = 0.1
    feed = WebsocketCommunicator(application, f"/ws/errors?token={access_token(admin_user)}")
    await feed.connect()
    layer = get_channel_layer()
    await asyncio.sleep(0.05)
    # What a Redis restart does to the group: it is gone.
    members = await group_members(layer, FEED_GROUP)
    assert members
    for member in members:
        await layer.group_discard(FEED_GROUP, member)
    assert await group_members(layer, FEED_GROUP) == []
    await asyncio.sleep(0.3)  # a recheck or two later
    event = {"type": "error.occurred", "event": "new", "error": {"id": 1}}
    await layer.group_send(FEED_GROUP, event)
    assert (await feed.receive_json_from(timeout=5))["op"] == "error_occurred"
    await feed.disconnect()


async def group_members(layer: Any, group: str) -> list[str]:
    if hasattr(layer, "groups"):  # the in-memory layer
        return list(layer.groups.get(group, {}))
    connection = layer.connection(layer.consistent_hash(group))  # channels_redis
    return [member.decode() for member in await connection.zrange(layer._group_key(group), 0, -1)]
