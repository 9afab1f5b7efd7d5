"""listmodels, version and status tell the truth about this server."""

import json
from typing import Any

import pytest

from tests.helpers import call, connected

pytestmark = pytest.mark.django_db(transaction=True)


async def run(token: str, name: str) -> dict[str, Any]:
    comm = await connected(token)
    try:
        return (await call(comm, name, {}))[-1]
    finally:
        await comm.disconnect()


async def test_listmodels_shows_configured_providers_models_and_how_to_enable_the_rest(token: str) -> None:
    result = await run(token, "listmodels")
    providers = {p["provider"]: p for p in json.loads(result["text"])["providers"]}
    assert "kimi-k2.6" in [m["name"] for m in providers["kimi"]["models"]]
    assert any(m["vision"] for m in providers["glm"]["models"])
    assert providers["local"]["models"] == [] and "LOCAL_BASE_URL" in providers["local"]["enable_with"]


async def test_version_names_the_mcp_revisions(token: str) -> None:
    info = json.loads((await run(token, "version"))["text"])
    assert info["mcp_protocol_versions"] == ["2025-06-18", "2025-11-25", "2026-07-28"]


async def test_status_reports_providers_and_uptime(token: str, settings: Any) -> None:
    settings.GLM_API_KEY = ""
    info = json.loads((await run(token, "status"))["text"])
    assert {p["provider"]: p["configured"] for p in info["providers"]} == {"kimi": True, "glm": False, "local": False}
    assert info["uptime_s"] >= 0
