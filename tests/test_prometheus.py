"""/metrics: Prometheus text that prometheus-client's own parser reads, right across processes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from django.test import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess, access_token, database_url, provider_env
from tools_app.services import tool_call

pytestmark = pytest.mark.django_db(transaction=True)


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample_value(family: Any, suffix: str, **labels: str) -> float:
    return sum(
        s.value
        for s in family.samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_calls_show_up_as_counters_and_histograms_and_the_gauges_are_read_at_scrape(user: Any) -> None:
    before = families((await AsyncClient().get("/metrics")).content.decode())
    calls_before = (
        sample_value(before["exai_tool_calls"], "_total", tool="chat", status="ok")
        if "exai_tool_calls" in before
        else 0
    )
    await tool_call(user=user, name="chat", arguments={"prompt": "count me"}, request_id=uuid.uuid4().hex)
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    parsed = families(response.content.decode())
    assert sample_value(parsed["exai_tool_calls"], "_total", tool="chat", status="ok") == calls_before + 1
    latency = parsed["exai_tool_call_latency_seconds"]
    assert sample_value(latency, "_count", tool="chat", provider="kimi", model="kimi-k2.6") >= 1
    assert sample_value(parsed["exai_throttle_slots"], "", pool="provider:kimi", state="limit") == 6
    assert sample_value(parsed["exai_circuit_state"], "", provider="kimi") == 0


async def test_made_up_tool_and_model_names_are_counted_as_other_and_add_no_series(user: Any) -> None:
    await tool_call(user=user, name="chat", arguments={"prompt": "warm up"}, request_id=uuid.uuid4().hex)
    before = (await AsyncClient().get("/metrics")).content.decode()
    for i in range(150):
        await tool_call(user=user, name=f"made-up-tool-{i}", arguments={}, request_id=uuid.uuid4().hex)
        await tool_call(
            user=user,
            name="chat",
            arguments={"prompt": "x", "model": f"made-up-model-{i}"},
            request_id=uuid.uuid4().hex,
        )
    text = (await AsyncClient().get("/metrics")).content.decode()
    assert "made-up" not in text
    parsed = families(text)
    assert sample_value(parsed["exai_tool_calls"], "_total", tool="other", status="unknown_tool") >= 150
    assert len(text.splitlines()) - len(before.splitlines()) <= 60  # a fixed set of `other` series, not 150 x 35


@pytest.mark.e2e
def test_multiprocess_mode_adds_up_the_calls_of_every_server_process(
    django_db_blocker: Any, provider_stub: Any, file_root: Any, tmp_path: Any, user: Any
) -> None:
    with django_db_blocker.unblock():
        env = {
            "DATABASE_URL": database_url(),
            "EXAI_FILE_ROOT": str(file_root),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            **provider_env(provider_stub),
        }
    servers = [ServerProcess(env).start() for _ in range(2)]
    try:
        headers = {"Authorization": f"Bearer {access_token(user)}"}
        for server in servers:
            for _ in range(3):
                response = httpx.post(
                    f"{server.http_url}/api/tools/version/call/", json={}, headers=headers, timeout=10
                )
                assert response.status_code == 200
        scraped = families(httpx.get(f"{servers[0].http_url}/metrics", timeout=10).text)
        assert sample_value(scraped["exai_tool_calls"], "_total", tool="version", status="ok") == 6
    finally:
        for server in servers:
            server.stop()
