"""Provider errors that tell the user what to do, and rate limits that are waited out, not hammered."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.helpers import metadata, run
from tools_app.circuit import get_circuit_breaker
from tools_app.providers import get_provider
from tools_app.throttle.adaptive import provider_rate_limited
from tools_app.throttle.base import provider_limit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("model", "hint"),
    [
        ("kimi-k2.6", "KIMI_BASE_URL=https://api.moonshot.cn/v1"),
        ("glm-5.1", "GLM_BASE_URL=https://open.bigmodel.cn/api/paas/v4/"),
    ],
)
async def test_a_rejected_key_points_at_the_other_regions_endpoint(
    user: Any, stub: Any, settings: Any, model: str, hint: str
) -> None:
    settings.KIMI_API_KEY = settings.GLM_API_KEY = "bad-key"
    outcome = await run(user, "chat", {"prompt": "hi", "model": model})
    assert outcome["error"]["code"] == "provider_error"
    assert "rejected the API key (401)" in outcome["error"]["message"] and hint in outcome["error"]["message"]


def test_a_mainland_endpoint_points_back_at_the_international_one(settings: Any) -> None:
    settings.KIMI_BASE_URL = "https://api.moonshot.cn/v1"
    settings.GLM_BASE_URL = "https://open.bigmodel.cn/api/paas/v4/"
    assert "KIMI_BASE_URL=https://api.moonshot.ai/v1" in get_provider("kimi").region_hint
    assert "GLM_BASE_URL=https://api.z.ai/api/paas/v4/" in get_provider("glm").region_hint


@pytest.mark.parametrize("model", ["kimi-k2.6", "glm-5.1"])
async def test_a_429_with_retry_after_is_waited_out_inside_the_call(user: Any, stub: Any, model: str) -> None:
    progress: list[str] = []

    async def on_progress(message: str) -> None:
        progress.append(message)

    prompt = "busy [[stub:fail_first=1]] [[stub:fail_status=429]] [[stub:retry_after=0.3]]"
    outcome = await run(user, "chat", {"prompt": prompt, "model": model}, on_progress=on_progress)
    assert metadata(outcome)["model"] == model and len(stub.chat_requests()) == 2
    assert any("rate limiting; trying again in 0.3s" in message for message in progress)
    assert metadata(outcome)["latency_metrics"]["total_latency_ms"] >= 300


async def test_a_429_whose_wait_would_pass_the_deadline_fails_at_once(user: Any, stub: Any, settings: Any) -> None:
    settings.EXAI_TOOL_TIMEOUT_S = 5
    prompt = "busy [[stub:status=429]] [[stub:retry_after=60]]"
    outcome = await run(user, "chat", {"prompt": prompt, "model": "kimi-k2.6"})
    assert outcome["error"]["code"] == "provider_error" and "429" in outcome["error"]["message"]
    assert len(stub.chat_requests()) == 1
    # A rate limit is not a failing provider: the circuit stays closed and counts no failure.
    circuit = (await get_circuit_breaker().snapshot(["kimi"]))["kimi"]
    assert (circuit["state"], circuit["failures"]) == ("closed", 0)


async def test_a_429_halves_the_providers_concurrency_which_then_recovers_step_by_step(
    stub: Any, settings: Any
) -> None:
    settings.EXAI_KIMI_MAX_CONCURRENCY = 6
    settings.EXAI_RATE_LIMIT_RECOVERY_S = 0.5
    assert provider_rate_limited("kimi") == 3
    assert provider_rate_limited("kimi") == 1
    assert provider_limit("kimi") == 1 and provider_limit("glm") == settings.EXAI_GLM_MAX_CONCURRENCY
    await asyncio.sleep(1.1)  # two recovery steps (the next one is 0.4 s away)
    assert provider_limit("kimi") == 3
    await asyncio.sleep(1.5)
    assert provider_limit("kimi") == 6


async def test_a_lowered_limit_holds_calls_back_at_the_throttle(
    user: Any, other_user: Any, stub: Any, settings: Any
) -> None:
    settings.EXAI_KIMI_MAX_CONCURRENCY = 4
    settings.EXAI_RATE_LIMIT_RECOVERY_S = 60
    provider_rate_limited("kimi")
    provider_rate_limited("kimi")  # 4 -> 2 -> 1
    outcomes = await asyncio.gather(
        *(run(user, "chat", {"prompt": f"q{n} [[stub:delay=0.2]]", "model": "kimi-k2.6"}) for n in range(3))
    )
    assert all("error" not in outcome for outcome in outcomes) and stub.max_in_flight == 1


async def test_credentials_in_the_local_endpoints_url_never_reach_a_user(user: Any, settings: Any) -> None:
    from tests.conftest import free_port

    settings.KIMI_API_KEY = settings.GLM_API_KEY = ""
    settings.LOCAL_BASE_URL = f"http://exai-user:s3cret-pass@127.0.0.1:{free_port()}/v1"  # nothing listens
    settings.LOCAL_MODELS = ["qwen2.5-coder"]
    outcome = await run(user, "chat", {"prompt": "hi", "model": "qwen2.5-coder"})
    assert outcome["error"]["code"] in ("provider_error", "provider_unavailable", "timeout")
    assert "127.0.0.1" in outcome["error"]["message"]  # where it tried is still said
    listing = await run(user, "listmodels", {})
    for text in (outcome["error"]["message"], json.dumps(listing)):
        assert "s3cret-pass" not in text and "exai-user" not in text
