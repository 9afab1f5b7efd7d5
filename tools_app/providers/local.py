"""Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server) named by LOCAL_BASE_URL."""

from django.conf import settings

from tools_app.providers.base import ModelSpec
from tools_app.providers.openai_compatible import OpenAICompatibleProvider

# Capabilities of an arbitrary local model are unknown; these are conservative.
_LOCAL_CONTEXT_WINDOW = 32_768
_LOCAL_MAX_OUTPUT = 4_096


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

    def models(self) -> list[ModelSpec]:
        return [
            ModelSpec(name, "local", _LOCAL_CONTEXT_WINDOW, _LOCAL_MAX_OUTPUT, description="local model")
            for name in settings.LOCAL_MODELS
        ]
