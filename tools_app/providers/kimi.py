"""Moonshot Kimi through the openai SDK.

The K2.5+ family (kimi-k2.6 is the flagship) are thinking models: they stream their
reasoning apart from the answer, accept no temperature but 1 and no other top_p, n or
penalties, and take `thinking: {"type": ...}` *or* `reasoning_effort`, never both. The
`moonshot-v1-*` family are plain chat models, with `-vision-preview` variants.
"""

from typing import Any

from django.conf import settings

from tools_app.providers.catalogue import Family, family
from tools_app.providers.openai_compatible import OpenAICompatibleProvider
from tools_app.providers.types import ModelSpec, ThinkingMode


def _k(pattern: str, description: str, *, vision: bool = False) -> Family:
    """A family of the K line: 256k context, thinking, sampling pinned."""
    return family(
        pattern, 262_144, 32_768, description, vision=vision, thinking=True, fixed_temperature=1.0, web_search=True
    )


class KimiProvider(OpenAICompatibleProvider):
    name = "kimi"
    label = "Moonshot Kimi"
    enable_hint = "KIMI_API_KEY (and KIMI_BASE_URL for a non-default endpoint)"
    file_purpose = "file-extract"
    search_tool = {"type": "builtin_function", "function": {"name": "$web_search"}}
    families = (
        _k(r"kimi-k2\.7-code.*", "Kimi K2.7 for code, thinking"),
        _k(r"kimi-k\d+(\.\d+)?", "Kimi flagship, thinking, text and images", vision=True),
        _k(r"kimi-k\d.*", "Kimi K line, thinking"),
        family(r"moonshot-v1-8k-vision.*", 8_192, 4_096, "Moonshot v1 with image input", vision=True),
        family(r"moonshot-v1-32k-vision.*", 32_768, 8_192, "Moonshot v1 with image input", vision=True),
        family(r"moonshot-v1-128k-vision.*", 131_072, 8_192, "Moonshot v1 with image input", vision=True),
        family(r"moonshot-v1-8k", 8_192, 4_096, "Moonshot v1, short context"),
        family(r"moonshot-v1-32k", 32_768, 8_192, "Moonshot v1"),
        family(r"moonshot-v1-(128k|auto)", 131_072, 8_192, "Moonshot v1, long context"),
    )
    preference = (
        r"kimi-k2\.6",
        r"kimi-k2\.5",
        r"kimi-k\d+(\.\d+)?",
        r"kimi-k2\.7-code",
        r"moonshot-v1-128k",
        r"moonshot-v1-auto",
        r"moonshot-v1-32k",
        r"moonshot-v1-8k",
    )
    known_models = ("kimi-k2.6", "kimi-k2.5", "kimi-k2.7-code", "moonshot-v1-128k", "moonshot-v1-128k-vision-preview")
    retired = {
        "kimi-k2-0711-preview": "kimi-k2.6",
        "kimi-k2-0905-preview": "kimi-k2.6",
        "kimi-k2-turbo-preview": "kimi-k2.6",
        "kimi-k2-thinking": "kimi-k2.6",
        "kimi-k2-thinking-turbo": "kimi-k2.6",
        "kimi-latest": "kimi-k2.6",
    }
    owns = r"(kimi|moonshot)-.*"

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

    @property
    def default_model_setting(self) -> str:
        return settings.EXAI_KIMI_DEFAULT_MODEL

    @property
    def region_hint(self) -> str:
        if ".moonshot.cn" in self.base_url:
            return "A key from platform.moonshot.ai works only at KIMI_BASE_URL=https://api.moonshot.ai/v1."
        return "A key from platform.moonshot.cn (mainland) works only at KIMI_BASE_URL=https://api.moonshot.cn/v1."

    def thinking_controls(self, spec: ModelSpec, mode: ThinkingMode | None) -> dict[str, Any]:
        # One control per request: both together are a 400. `minimal` switches reasoning off,
        # low/medium/high set its effort, `max` (or none) leaves the model's full thinking on.
        if mode == "minimal":
            return {"thinking": {"type": "disabled"}}
        if mode in ("low", "medium", "high"):
            return {"reasoning_effort": mode}
        return {}

    def model_refused(self, status: int, code: str) -> bool:
        # "Not found the model … or Permission denied" (resource_not_found_error).
        return status == 404
