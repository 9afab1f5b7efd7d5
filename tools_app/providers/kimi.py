"""Moonshot Kimi through the openai SDK."""

from django.conf import settings

from tools_app.providers.base import ModelSpec
from tools_app.providers.openai_compatible import OpenAICompatibleProvider

_MODELS = [
    ModelSpec(
        "kimi-k2-0905-preview", "kimi", 262_144, 32_768, web_search=True, description="Kimi K2, strongest for code"
    ),
    ModelSpec("kimi-k2-turbo-preview", "kimi", 262_144, 32_768, web_search=True, description="Kimi K2, fast output"),
    ModelSpec("kimi-k2-thinking", "kimi", 262_144, 32_768, thinking=True, description="Kimi K2 with reasoning"),
    ModelSpec("kimi-latest", "kimi", 131_072, 8_192, vision=True, description="Kimi with image input"),
    ModelSpec("moonshot-v1-128k", "kimi", 131_072, 8_192, description="Moonshot v1, long context"),
]


class KimiProvider(OpenAICompatibleProvider):
    name = "kimi"
    label = "Moonshot Kimi"
    enable_hint = "KIMI_API_KEY (and KIMI_BASE_URL for a non-default endpoint)"
    file_purpose = "file-extract"
    search_tool = {"type": "builtin_function", "function": {"name": "$web_search"}}

    @property
    def configured(self) -> bool:
        return bool(settings.KIMI_API_KEY)

    @property
    def api_key(self) -> str:  # type: ignore[override]
        return settings.KIMI_API_KEY

    @property
    def base_url(self) -> str:  # type: ignore[override]
        return settings.KIMI_BASE_URL

    @property
    def timeout_s(self) -> float:
        return settings.EXAI_KIMI_TIMEOUT_S

    @property
    def max_file_bytes(self) -> int:
        return settings.EXAI_KIMI_MAX_FILE_BYTES

    def models(self) -> list[ModelSpec]:
        return _MODELS
