"""What each call cost: tokens from the providers' usage (cache hits apart), priced from the
table, in the result's metadata, the latency sample and Prometheus; no price, no cost."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from metrics_app import prometheus
from metrics_app.models import LatencySample
from metrics_app.recorder import buffer
from tools_app.pricing import DEFAULT_PRICES, price_of
from tools_app.services import tool_call

pytestmark = pytest.mark.django_db(transaction=True)


async def chat(user: Any, **arguments: Any) -> dict[str, Any]:
    outcome = await tool_call(user=user, name="chat", arguments=arguments, request_id=uuid.uuid4().hex)
    assert "error" not in outcome, outcome
    return outcome["outputs"][0]["metadata"]


def dollars(tokens_in: int, cached: int, tokens_out: int, input_: float, hit: float, output: float) -> float:
    return ((tokens_in - cached) * input_ + cached * hit + tokens_out * output) / 1_000_000


async def test_a_threads_second_turn_pays_the_cache_hit_price_for_what_the_provider_had_cached(
    user: Any, stub: Any
) -> None:
    first = await chat(user, prompt="Explain the layers of this gateway in two paragraphs.", model="kimi-k2.6")
    assert first["model"] == "kimi-k2.6" and first["cached_tokens"] == 0
    assert first["cost_usd"] == pytest.approx(dollars(first["tokens_in"], 0, first["tokens_out"], 0.95, 0.16, 4.00))

    second = await chat(user, prompt="And the third?", model="kimi-k2.6", continuation_id=first["continuation_id"])
    # The system prompt and the first turn were a prefix the provider had seen: a cache hit.
    assert 0 < second["cached_tokens"] < second["tokens_in"]
    expected = dollars(second["tokens_in"], second["cached_tokens"], second["tokens_out"], 0.95, 0.16, 4.00)
    assert second["cost_usd"] == pytest.approx(expected)
    assert second["cost_usd"] < dollars(second["tokens_in"], 0, second["tokens_out"], 0.95, 0.16, 4.00)

    await sync_to_async(buffer.flush)()
    samples = await sync_to_async(list)(LatencySample.objects.order_by("created"))
    assert [s.cost_usd for s in samples] == [pytest.approx(first["cost_usd"]), pytest.approx(second["cost_usd"])]
    assert samples[1].cached_tokens == second["cached_tokens"] and samples[1].tokens_in == second["tokens_in"]


async def test_a_model_without_a_price_shows_its_tokens_and_no_cost(user: Any, stub: Any) -> None:
    assert price_of("glm-5") is None
    metadata = await chat(user, prompt="hello", model="glm-5")
    assert metadata["tokens_in"] > 0 and metadata["tokens_out"] > 0
    assert metadata["cost_usd"] is None and "no price for glm-5" in metadata["cost_note"]
    await sync_to_async(buffer.flush)()
    sample = await LatencySample.objects.aget()
    assert sample.cost_usd is None and sample.tokens_in == metadata["tokens_in"]


async def test_a_prices_file_adds_a_model_and_replaces_a_default(
    user: Any, stub: Any, settings: Any, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "glm-5": {"input": 1.0, "cached_input": 0.2, "output": 3.2, "read": "2026-11-30"},
                "glm-4.6": {"input": 0.5, "output": 2.0},
            }
        )
    )
    settings.EXAI_PRICES_FILE = str(prices)
    assert price_of("glm-4.6").input == 0.5 and price_of("glm-4.6").cached_input == 0.5  # no hit price: the input's
    assert price_of("kimi-k2.6") == DEFAULT_PRICES["kimi-k2.6"]
    metadata = await chat(user, prompt="hello", model="glm-5")
    assert metadata["cost_usd"] == pytest.approx(dollars(metadata["tokens_in"], 0, metadata["tokens_out"], 1, 0.2, 3.2))
    settings.EXAI_PRICES_FILE = ""
    assert price_of("glm-5") is None


async def test_prometheus_counts_tokens_by_kind_and_cost_by_model(user: Any, stub: Any) -> None:
    def value(name: str, **labels: str) -> float:
        return prometheus.REGISTRY.get_sample_value(name, labels) or 0.0

    before_cost = value("exai_cost_usd_total", provider="kimi", model="kimi-k2.6")
    before_out = value("exai_tokens_total", provider="kimi", model="kimi-k2.6", kind="output")

    def unpriced_glm() -> float:  # any model label: one the series has not met yet counts as `other`
        return sum(
            sample.value
            for metric in prometheus.REGISTRY.collect()
            if metric.name == "exai_unpriced_calls"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("provider") == "glm"
        )

    before_unpriced = unpriced_glm()
    priced = await chat(user, prompt="count me", model="kimi-k2.6")
    await chat(user, prompt="and me", model="glm-5")
    await sync_to_async(buffer.flush)()
    assert value("exai_cost_usd_total", provider="kimi", model="kimi-k2.6") - before_cost == pytest.approx(
        priced["cost_usd"]
    )
    assert (
        value("exai_tokens_total", provider="kimi", model="kimi-k2.6", kind="output") - before_out
        == priced["tokens_out"]
    )
    assert unpriced_glm() - before_unpriced == 1


async def test_the_spend_api_shows_users_their_own_and_staff_everyones(
    user: Any, other_user: Any, admin_user: Any, stub: Any
) -> None:
    from rest_framework.test import APIClient

    costs = [(await chat(user, prompt=f"question {n}", model="kimi-k2.6"))["cost_usd"] for n in range(2)]
    await chat(user, prompt="no price", model="glm-5")
    theirs = (await chat(other_user, prompt="someone else", model="glm-4.6"))["cost_usd"]
    await sync_to_async(buffer.flush)()

    def get(who: Any, query: str = "") -> Any:
        client = APIClient()
        client.force_authenticate(who)
        return client.get(f"/api/metrics/spend/{query}")

    mine = (await sync_to_async(get)(user, "?group=model")).json()
    assert mine["calls"] == 3 and mine["unpriced_calls"] == 1
    assert mine["cost_usd"] == pytest.approx(sum(costs), rel=1e-5)
    assert {g["model"]: g["calls"] for g in mine["groups"]} == {"kimi-k2.6": 2, "glm-5": 1}
    by_model = {g["model"]: g for g in mine["groups"]}
    assert by_model["glm-5"]["cost_usd"] == 0 and by_model["glm-5"]["tokens_in"] > 0
    assert (await sync_to_async(get)(user, f"?user={other_user.pk}")).status_code == 403
    assert (await sync_to_async(get)(user, "?group=user")).status_code == 403

    everyone = (await sync_to_async(get)(admin_user, "?group=user,day")).json()
    per_user = {g["user"]: g for g in everyone["groups"]}
    assert per_user[user.pk]["calls"] == 3 and per_user[other_user.pk]["cost_usd"] == pytest.approx(theirs, rel=1e-5)
    assert everyone["cost_usd"] == pytest.approx(sum(costs) + theirs, rel=1e-5)
    assert all(g["day"] == everyone["until"] for g in everyone["groups"])
    narrowed = (await sync_to_async(get)(admin_user, f"?user={other_user.pk}")).json()
    assert narrowed["calls"] == 1
    assert (await sync_to_async(get)(admin_user, "?group=colour")).status_code == 400
    assert APIClient().get("/api/metrics/spend/").status_code == 401


async def test_spend_report_writes_the_markdown_per_user_model_tool_and_day(
    user: Any, other_user: Any, stub: Any, tmp_path: Path
) -> None:
    from io import StringIO

    from django.core.management import call_command

    spent = (await chat(user, prompt="one", model="kimi-k2.6"))["cost_usd"]
    spent += (await chat(other_user, prompt="two", model="glm-4.6"))["cost_usd"]
    await chat(user, prompt="three", model="glm-5")
    await sync_to_async(buffer.flush)()
    out, path = StringIO(), tmp_path / "spend.md"
    await sync_to_async(call_command)("spend_report", "--days", "7", "--out", str(path), stdout=out, stderr=StringIO())
    report = path.read_text()
    assert report == out.getvalue()
    assert f"**{spent:,.4f} USD** over 3 calls" in report and "1 of them with a model that has no price" in report
    for heading in ("## Per user", "## Per model", "## Per tool", "## Per day", "## Prices used"):
        assert heading in report
    assert f"| {user.username} | 2 |" in report and f"| {other_user.username} | 1 |" in report
    assert "| kimi-k2.6 | 0.95 | 0.16 | 4 | 2026-05-20 |" in report and "| glm-5 | no price |" in report
    mine = StringIO()
    await sync_to_async(call_command)(
        "spend_report", "--user", user.username, "--out", str(tmp_path / "mine.md"), stdout=mine, stderr=StringIO()
    )
    assert "## Per user" not in mine.getvalue() and "over 2 calls" in mine.getvalue()


# --- Budgets ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_budgets() -> Any:
    from tools_app import budgets

    budgets.forget_limits()
    budgets._local.clear()
    yield
    budgets.forget_limits()
    budgets._local.clear()


async def test_a_call_that_would_start_over_the_daily_budget_is_refused_before_any_request(
    user: Any, stub: Any, settings: Any
) -> None:
    from tools_app.models import Budget

    settings.EXAI_BUDGET_CACHE_S = 0
    first = await chat(user, prompt="spend a little", model="kimi-k2.6")
    daily = round(first["cost_usd"] * 1.5, 4)  # budgets are kept to a hundredth of a cent
    assert daily > first["cost_usd"]
    await Budget.objects.acreate(user=user, daily_usd=daily, monthly_usd=100)
    await chat(user, prompt="still under", model="kimi-k2.6")  # spent 1x of 1.5x when it started
    sent = len(stub.chat_requests())
    refused = await tool_call(user=user, name="chat", arguments={"prompt": "over"}, request_id=uuid.uuid4().hex)
    error = refused["error"]
    assert error["code"] == "budget_exceeded" and error["period"] == "daily"
    assert error["allowed_usd"] == pytest.approx(daily)
    assert error["spent_usd"] >= error["allowed_usd"] and error["resets_at"].endswith("T00:00:00+00:00")
    assert "daily budget" in error["message"] and "resets at" in error["message"]
    assert len(stub.chat_requests()) == sent  # nothing was sent
    # Another user, without a budget of their own, has no limit; a tool that asks no model still works.
    assert "error" not in await tool_call(user=user, name="version", arguments={}, request_id="v")


async def test_the_default_budget_holds_for_users_without_their_own_and_a_monthly_one_too(
    user: Any, other_user: Any, stub: Any, settings: Any
) -> None:
    from tools_app.models import Budget

    settings.EXAI_BUDGET_CACHE_S = 0
    await Budget.objects.acreate(user=None, daily_usd=None, monthly_usd="0.0001")  # everyone: less than a call
    await Budget.objects.acreate(user=other_user, daily_usd="10", monthly_usd=None)  # theirs: no monthly limit
    await chat(user, prompt="the first goes (nothing spent yet)", model="kimi-k2.6")
    refused = await tool_call(user=user, name="chat", arguments={"prompt": "again"}, request_id=uuid.uuid4().hex)
    assert refused["error"]["code"] == "budget_exceeded" and refused["error"]["period"] == "monthly"
    assert refused["error"]["resets_at"].endswith("-01T00:00:00+00:00")
    await chat(other_user, prompt="one", model="kimi-k2.6")
    await chat(other_user, prompt="two", model="kimi-k2.6")  # their own budget, not the default


async def test_a_budget_counts_what_was_spent_before_a_restart(user: Any, stub: Any, settings: Any) -> None:
    from tools_app import budgets
    from tools_app.models import Budget

    settings.EXAI_BUDGET_CACHE_S = 0
    first = await chat(user, prompt="before the restart", model="kimi-k2.6")
    await sync_to_async(buffer.flush)()  # recorded in the daily spend rows
    budgets._local.clear()  # a new process: its counters are gone
    await Budget.objects.acreate(user=user, daily_usd=round(first["cost_usd"] / 2, 4))
    refused = await tool_call(user=user, name="chat", arguments={"prompt": "after"}, request_id=uuid.uuid4().hex)
    assert refused["error"]["code"] == "budget_exceeded"
    assert refused["error"]["spent_usd"] == pytest.approx(first["cost_usd"], rel=1e-3)


@pytest.mark.e2e
def test_a_budget_spent_through_one_server_process_stops_calls_on_another(
    user: Any, stub: Any, redis_settings: Any, settings: Any
) -> None:
    """Two daphne processes on Redis: what one counts, the other sees at once (no metrics
    flush in between: their writers wait a minute)."""
    import httpx

    from tests.conftest import REDIS_URL, ServerProcess, access_token, database_url, provider_env
    from tools_app.models import Budget

    env = {
        **provider_env(stub),
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "EXAI_REDIS_PREFIX": f"exai-budget-{uuid.uuid4().hex[:8]}",
        "EXAI_METRICS_FLUSH_S": "60",
        "EXAI_BUDGET_CACHE_S": "0",
        "EXAI_LOG_LEVEL": "ERROR",
    }
    servers = [ServerProcess(env).start() for _ in range(2)]
    try:
        headers = {"Authorization": f"Bearer {access_token(user)}"}

        def call(server: ServerProcess, prompt: str) -> dict[str, Any]:
            response = httpx.post(
                f"{server.http_url}/api/tools/chat/call/",
                json={"arguments": {"prompt": prompt, "model": "kimi-k2.6"}},
                headers=headers,
                timeout=30,
            )
            return response.json()

        first = call(servers[0], "on the first process")
        cost = first["outputs"][0]["metadata"]["cost_usd"]
        Budget.objects.create(user=user, daily_usd=round(cost * 1.5, 4))
        assert "error" not in call(servers[1], "under budget on the second")
        sent = len(stub.chat_requests())
        for server in servers:
            refused = call(server, "over budget")
            assert refused["error"]["code"] == "budget_exceeded", refused
            assert refused["error"]["spent_usd"] == pytest.approx(2 * cost, rel=0.5)
        assert len(stub.chat_requests()) == sent
    finally:
        for server in servers:
            server.stop()


def test_budgets_are_set_in_the_admin(admin_client: Any, user: Any) -> None:
    from tools_app.models import Budget

    assert admin_client.get("/admin/tools_app/budget/add/").status_code == 200
    response = admin_client.post(
        "/admin/tools_app/budget/add/", {"user": user.pk, "daily_usd": "2.50", "monthly_usd": ""}, follow=True
    )
    assert response.status_code == 200
    budget = Budget.objects.get(user=user)
    assert float(budget.daily_usd) == 2.5 and budget.monthly_usd is None
    assert "2.5" in admin_client.get("/admin/tools_app/budget/").content.decode()
