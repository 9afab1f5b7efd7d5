"""Providers through the real SDKs (openai for Kimi and local, zhipuai for GLM) against the stub."""

import asyncio
from typing import Any

import pytest

from tests.helpers import wait_for
from tools_app.providers import ProviderError, resolve_model
from tools_app.providers.replies import ChatResult, ReplyCollector

# A thinking model and a plain one of each provider, as they list them today.
MODELS = ["kimi-k2.6", "moonshot-v1-128k", "glm-5.1", "glm-4.5"]


async def chat(model: str, prompt: str, deltas: list[str] | None = None, **options: Any) -> ChatResult:
    resolved = await resolve_model(model)

    async def on_delta(delta: str) -> None:
        if deltas is not None:
            deltas.append(delta)

    return await resolved.provider.chat(
        spec=resolved.spec,
        messages=[{"role": "user", "content": prompt}],
        temperature=options.pop("temperature", None),
        max_tokens=options.pop("max_tokens", None),
        reply=ReplyCollector(resolved.spec.name, on_delta),
        **options,
    )


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("kimi-k2.6", "/v1/chat/completions"),
        ("moonshot-v1-128k", "/v1/chat/completions"),
        ("glm-5.1", "/api/paas/v4/chat/completions"),
    ],
)
async def test_each_sdk_streams_a_completion_from_its_provider_api(stub: Any, model: str, path: str) -> None:
    deltas: list[str] = []
    result = await chat(model, "hello there", deltas)

    assert result.text == f"stub reply from {model}: hello there (saw 1 messages)"
    assert "".join(deltas) == result.text and len(deltas) > 1
    assert result.tokens_in > 0 and result.tokens_out > 0
    assert result.finish_reason == "stop"
    [request] = stub.chat_requests()
    assert request["path"] == path
    assert request["payload"]["stream"] is True
    assert request["payload"]["model"] == model
    # Never the provider's tiny default output budget: room for reasoning and answer.
    assert request["payload"]["max_tokens"] >= 8192


async def test_a_local_openai_compatible_endpoint_serves_its_listed_models(stub: Any, settings: Any) -> None:
    settings.KIMI_API_KEY = settings.GLM_API_KEY = ""
    settings.LOCAL_BASE_URL = f"{stub.url}/local/v1"
    settings.LOCAL_MODELS = ["qwen2.5-coder"]

    assert (await resolve_model("auto")).spec.name == "qwen2.5-coder"
    result = await chat("qwen2.5-coder", "hi")
    assert result.text.startswith("stub reply from qwen2.5-coder: hi")


@pytest.mark.parametrize("model", ["kimi-k2.6", "glm-4.5"])
async def test_a_rejected_key_is_a_provider_error_that_is_not_retryable(settings: Any, model: str) -> None:
    settings.KIMI_API_KEY = settings.GLM_API_KEY = "bad-key"
    with pytest.raises(ProviderError) as caught:
        await chat(model, "hi")  # the model list cannot be read either: the known lineup stands in
    assert (caught.value.code, caught.value.status, caught.value.retryable) == ("provider_error", 401, False)
    assert "rejected the API key" in caught.value.message


@pytest.mark.parametrize("model", MODELS)
async def test_a_rate_limit_is_retryable_and_carries_retry_after(model: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await chat(model, "slow down [[stub:status=429]] [[stub:retry_after=3]]")
    assert (caught.value.status, caught.value.retryable, caught.value.retry_after_s) == (429, True, 3.0)


@pytest.mark.parametrize("model", ["kimi-k2.6", "glm-4.5"])
async def test_the_sdk_retries_a_transient_server_error_itself(stub: Any, settings: Any, model: str) -> None:
    settings.EXAI_PROVIDER_MAX_RETRIES = 1
    result = await chat(model, "flaky [[stub:fail_first=1]]")
    assert result.text.startswith(f"stub reply from {model}: flaky")
    assert len(stub.chat_requests()) == 2


@pytest.mark.parametrize(
    ("model", "setting"),
    [("kimi-k2.6", "EXAI_KIMI_TIMEOUT_S"), ("glm-4.5", "EXAI_GLM_TIMEOUT_S")],
)
async def test_a_silent_provider_times_out_and_its_request_is_aborted(
    stub: Any, settings: Any, model: str, setting: str
) -> None:
    setattr(settings, setting, 0.3)
    with pytest.raises(ProviderError) as caught:
        await chat(model, "think hard [[stub:delay=5]]")
    assert caught.value.code == "timeout"
    assert "said nothing for 0.3s" in caught.value.message
    await wait_for(lambda: stub.aborted == 1)
    assert stub.in_flight == 0


@pytest.mark.parametrize("model", ["kimi-k2.6", "glm-4.5"])
async def test_cancelling_a_call_aborts_the_provider_request(stub: Any, model: str) -> None:
    task = asyncio.ensure_future(chat(model, "long [[stub:delay=5]]"))
    await wait_for(lambda: stub.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: stub.aborted == 1)
