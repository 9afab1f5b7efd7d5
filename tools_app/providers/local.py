"""Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server) named by LOCAL_BASE_URL.

Its models are the ones LOCAL_MODELS names (a local server often lists more than the
operator wants offered); their capabilities are unknown, so the catalogue serves them
with conservative limits.
"""

from django.conf import settings

from tools_app.providers.openai_compatible import OpenAICompatibleProvider


class LocalProvider(OpenAICompatibleProvider):
    name = "local"
    label = "Local endpoint"
    enable_hint = "LOCAL_BASE_URL and LOCAL_MODELS"

    @property
    def configured(self) -> bool:
        return bool(settings.LOCAL_BASE_URL and settings.LOCAL_MODELS)

    @property
    def api_key(self) -> str:  # type: ignore[override]
        return settings.LOCAL_API_KEY

    @property
    def base_url(self) -> str:  # type: ignore[override]
        return settings.LOCAL_BASE_URL

    @property
    def timeout_s(self) -> float:
        return settings.EXAI_LOCAL_TIMEOUT_S

    @property
    def known_models(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(settings.LOCAL_MODELS)

    async def list_model_ids(self) -> list[str]:
        return list(settings.LOCAL_MODELS)
