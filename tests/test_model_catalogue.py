"""The model catalogue follows what each provider lists now (the stub serves late-2026 lists)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.helpers import metadata, run
from tools_app.providers import ProviderError, UnknownModel, get_provider, resolve_model

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("model", "served"),
    [
        ("kimi-k2.6", "kimi-k2.6"),
        ("glm-5.1", "glm-5.1"),
        ("kimi", "kimi-k2.6"),
        ("glm", "glm-5.2"),
        ("auto", "kimi-k2.6"),
        (None, "kimi-k2.6"),
    ],
)
async def test_chat_works_on_todays_models_by_name_alias_and_with_no_model(
    user: Any, stub: Any, model: str | None, served: str
) -> None:
    arguments = {"prompt": "hello"} | ({"model": model} if model else {})
    outcome = await run(user, "chat", arguments)
    assert metadata(outcome)["model"] == served
    assert outcome["text"] == f"stub reply from {served}: hello (saw 2 messages)"
    assert [request["payload"]["model"] for request in stub.chat_requests()] == [served]


async def test_each_providers_list_is_read_once_and_cached(stub: Any) -> None:
    for name in ("kimi", "glm-5.1", "auto", "kimi-k2.5", "glm"):
        await resolve_model(name)
    assert sorted(request["provider"] for request in stub.of_kind("models")) == ["glm", "kimi"]


async def test_the_list_is_read_again_after_the_refresh_interval(stub: Any, settings: Any) -> None:
    settings.EXAI_MODEL_REFRESH_S = 0.05
    await resolve_model("kimi")
    stub.kimi_models.remove("kimi-k2.6")  # retired meanwhile
    await asyncio.sleep(0.1)
    assert (await resolve_model("kimi")).spec.name == "kimi-k2.5"


@pytest.mark.parametrize(
    "retired", ["kimi-k2-0905-preview", "kimi-k2-turbo-preview", "kimi-k2-thinking", "kimi-latest"]
)
async def test_a_retired_id_is_refused_naming_its_successor_and_what_is_listed(
    user: Any, stub: Any, retired: str
) -> None:
    outcome = await run(user, "chat", {"prompt": "hi", "model": retired})
    error = outcome["error"]
    assert error["code"] == "invalid_arguments"
    assert f"{retired} was retired by Moonshot Kimi; use kimi-k2.6" in error["message"]
    assert "lists: kimi-k2.6, kimi-k2.5" in error["message"]
    assert stub.chat_requests() == []


async def test_an_unknown_model_is_refused_naming_the_listed_models(user: Any, stub: Any) -> None:
    outcome = await run(user, "chat", {"prompt": "hi", "model": "gpt-99"})
    assert outcome["error"]["code"] == "invalid_arguments"
    assert "gpt-99" in outcome["error"]["message"] and "glm-5.1" in outcome["error"]["message"]
    assert stub.chat_requests() == []


async def test_a_model_the_provider_adds_is_found_by_reading_the_list_again(stub: Any) -> None:
    await resolve_model("kimi")
    stub.kimi_models.append("kimi-k3")
    spec = (await resolve_model("kimi-k3")).spec
    # Its family's facts apply: the K line thinks and pins its temperature.
    assert (spec.thinking, spec.fixed_temperature, spec.context_window) == (True, 1.0, 262_144)
    assert [request["provider"] for request in stub.of_kind("models")] == ["kimi", "kimi"]  # again on the miss


async def test_a_listed_model_of_no_known_family_is_served_with_conservative_limits(user: Any, stub: Any) -> None:
    stub.glm_models.append("charglm-x")
    outcome = await run(user, "chat", {"prompt": "hi", "model": "charglm-x"})
    assert metadata(outcome)["model"] == "charglm-x"
    spec = (await resolve_model("charglm-x")).spec
    assert (spec.known, spec.context_window, spec.max_output_tokens, spec.thinking) == (False, 32_768, 4_096, False)


async def test_aliases_follow_the_list_when_the_preferred_model_goes(stub: Any) -> None:
    stub.kimi_models.remove("kimi-k2.6")
    stub.glm_models[:] = ["glm-4.5-air", "glm-4.6"]
    assert (await resolve_model("kimi")).spec.name == "kimi-k2.5"
    assert (await resolve_model("glm")).spec.name == "glm-4.6"


async def test_a_default_model_setting_chooses_the_alias_when_it_is_listed(stub: Any, settings: Any) -> None:
    settings.EXAI_GLM_DEFAULT_MODEL = "glm-4.7"
    settings.EXAI_KIMI_DEFAULT_MODEL = "kimi-k9-not-listed"
    assert (await resolve_model("glm")).spec.name == "glm-4.7"
    assert (await resolve_model("kimi")).spec.name == "kimi-k2.6"  # not listed: by preference


async def test_auto_gives_images_to_a_vision_model_and_files_to_a_provider_with_a_files_api(
    stub: Any, settings: Any
) -> None:
    stub.kimi_models[:] = ["moonshot-v1-128k", "moonshot-v1-32k-vision-preview"]
    assert (await resolve_model("auto")).spec.name == "moonshot-v1-128k"
    assert (await resolve_model("auto", vision=True)).spec.name == "moonshot-v1-32k-vision-preview"
    settings.KIMI_API_KEY = ""
    settings.LOCAL_BASE_URL, settings.LOCAL_MODELS = f"{stub.url}/local/v1", ["qwen2.5-coder"]
    settings.EXAI_DEFAULT_MODEL = "auto"
    assert (await resolve_model("auto", vision=True)).spec.name == "glm-5v-turbo"
    assert (await resolve_model("auto", files=True)).provider.name == "glm"


async def test_an_unreadable_list_leaves_the_known_lineup_standing_in(stub: Any) -> None:
    stub.models_status = 503
    resolved = await resolve_model("kimi")
    assert resolved.spec.name == "kimi-k2.6" and resolved.spec.listed is False
    assert get_provider("kimi").catalogue.error  # said why, for listmodels


async def test_an_unconfigured_provider_is_unavailable_naming_the_variable_to_set(settings: Any) -> None:
    settings.GLM_API_KEY = ""
    with pytest.raises(ProviderError) as caught:
        await resolve_model("glm-4.5")
    assert caught.value.code == "provider_unavailable" and "GLM_API_KEY" in caught.value.message


async def test_no_model_at_all_is_an_unknown_model_naming_what_was_asked(stub: Any) -> None:
    stub.kimi_models.clear()
    stub.glm_models.clear()
    with pytest.raises(UnknownModel) as caught:
        await resolve_model("auto")
    assert "no configured provider lists" in caught.value.advice


async def test_a_model_the_provider_stops_serving_is_refused_with_advice_and_the_list_is_read_again(
    user: Any, stub: Any
) -> None:
    await resolve_model("kimi-k2.5")  # listed when the catalogue was read
    stub.kimi_models.remove("kimi-k2.5")  # Moonshot retires it: now a 404
    outcome = await run(user, "chat", {"prompt": "hi", "model": "kimi-k2.5"})
    error = outcome["error"]
    assert error["code"] == "invalid_arguments"
    assert "does not serve kimi-k2.5" in error["message"] and "Not found the model kimi-k2.5" in error["message"]
    again = await run(user, "chat", {"prompt": "hi", "model": "kimi-k2.5"})
    assert again["error"]["code"] == "invalid_arguments" and len(stub.chat_requests()) == 1  # refused before sending


@pytest.mark.parametrize(
    ("model", "said"), [("glm-5.3", "do not have permission"), ("glm-4.8", "modelCode glm-4.8 does not exist")]
)
async def test_glm_refusing_a_listed_model_is_explained_with_the_listed_models(
    user: Any, stub: Any, model: str, said: str
) -> None:
    stub.glm_models.append(model)
    await resolve_model(model)  # listed when the catalogue was read
    if model == "glm-4.8":
        stub.glm_models.remove(model)  # gone since: code 1214 (glm-5.3 stays listed, but gated: 1220)
    outcome = await run(user, "chat", {"prompt": "hi", "model": model})
    error = outcome["error"]
    assert error["code"] == "invalid_arguments" and f"does not serve {model}" in error["message"]
    assert said in error["message"] and "Z.ai GLM lists: glm-4.5" in error["message"]


async def test_listmodels_shows_the_live_catalogue_and_what_the_aliases_mean(user: Any, stub: Any) -> None:
    stub.glm_models.append("glm-6")
    outcome = await run(user, "listmodels", {})
    answer = json.loads(outcome["text"])
    models = {p["provider"]: [m["name"] for m in p["models"]] for p in answer["providers"]}
    assert "kimi-k2.6" in models["kimi"] and "glm-6" in models["glm"]
    assert not any(name.startswith(("kimi-k2-", "kimi-latest")) for name in models["kimi"])
    assert answer["aliases"]["kimi"] == "kimi-k2.6" and answer["aliases"]["glm"] == "glm-5.2"
    k26 = next(m for p in answer["providers"] for m in p["models"] if m["name"] == "kimi-k2.6")
    assert (k26["thinking"], k26["vision"], k26["fixed_temperature"], k26["listed"]) == (True, True, 1.0, True)
