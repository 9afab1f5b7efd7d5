"""What must never be written anywhere: API keys, tokens and passwords, replaced in any text.

Every log handler (exai_site/log_filters.py), daphne's access log, error capture and every
error message a user gets go through `scrub`.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from exai_site.text import storable_text

_SECRET_PATTERNS = [
    re.compile(r"(?i)\bbearer\s+[\w.\-~+/]+=*"),
    re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]+"),  # JWTs
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),  # provider API keys
    re.compile(r"(?i)\b(api[_-]?key|token|password|secret)\s*[=:]\s*\S+"),
    re.compile(r"(?<=://)[^/\s@]+(?=@)"),  # credentials inside a URL (http://user:pass@host)
]
_SECRET_KEYS = re.compile(r"(?i)(authorization|api[_-]?key|token|password|secret|cookie)")
REDACTED = "<redacted>"


def _configured_secrets() -> list[str]:
    values = [settings.KIMI_API_KEY, settings.GLM_API_KEY, settings.LOCAL_API_KEY, settings.SECRET_KEY]
    return [value for value in values if value and len(value) >= 6 and value != "not-needed"]


def scrub(value: Any) -> Any:
    """A copy of `value` with API keys, tokens and passwords replaced, in strings, lists and dicts."""
    if isinstance(value, str):
        value = storable_text(value)  # storable whatever an exception carried
        for secret in _configured_secrets():
            value = value.replace(secret, REDACTED)
        for pattern in _SECRET_PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, dict):
        return {
            storable_text(str(key)): REDACTED if _SECRET_KEYS.search(str(key)) else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value
