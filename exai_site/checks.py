"""System checks: configuration mistakes surface in `manage.py check` with an id and a hint."""

from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


def _is_http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


@register(Tags.compatibility)
def check_providers(app_configs: Any, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    for variable in ("KIMI_BASE_URL", "GLM_BASE_URL"):
        value = getattr(settings, variable)
        if not _is_http_url(value):
            problems.append(
                Error(
                    f"{variable}={value!r} is not an http(s) URL.",
                    hint=f"Set {variable} to e.g. https://host/v1",
                    id="exai.E001",
                )
            )
    if settings.LOCAL_BASE_URL and not _is_http_url(settings.LOCAL_BASE_URL):
        problems.append(
            Error(
                f"LOCAL_BASE_URL={settings.LOCAL_BASE_URL!r} is not an http(s) URL.",
                hint="Set LOCAL_BASE_URL to the endpoint's /v1 URL, e.g. http://127.0.0.1:11434/v1",
                id="exai.E001",
            )
        )
    if bool(settings.LOCAL_BASE_URL) != bool(settings.LOCAL_MODELS):
        problems.append(
            Error(
                "LOCAL_BASE_URL and LOCAL_MODELS must be set together.",
                hint="Set LOCAL_MODELS to a comma-separated list of the endpoint's model names.",
                id="exai.E002",
            )
        )
    return problems


@register(Tags.compatibility)
def check_limits(app_configs: Any, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    for variable in ("EXAI_KIMI_MAX_CONCURRENCY", "EXAI_GLM_MAX_CONCURRENCY", "EXAI_LOCAL_MAX_CONCURRENCY"):
        if getattr(settings, variable) > settings.EXAI_MAX_CONCURRENCY:
            problems.append(
                Warning(
                    f"{variable}={getattr(settings, variable)} exceeds EXAI_MAX_CONCURRENCY="
                    f"{settings.EXAI_MAX_CONCURRENCY}; the global limit caps it anyway.",
                    hint=f"Lower {variable} or raise EXAI_MAX_CONCURRENCY.",
                    id="exai.W002",
                )
            )
    slowest = max(
        settings.EXAI_KIMI_TIMEOUT_S,
        settings.EXAI_GLM_TIMEOUT_S,
        settings.EXAI_LOCAL_TIMEOUT_S,
        settings.EXAI_FILE_TIMEOUT_S,
    )
    if slowest + settings.EXAI_QUEUE_TIMEOUT_S >= settings.EXAI_TOOL_TIMEOUT_S:
        problems.append(
            Error(
                f"EXAI_TOOL_TIMEOUT_S={settings.EXAI_TOOL_TIMEOUT_S:g} must exceed the slowest provider timeout "
                "(EXAI_KIMI_/GLM_/LOCAL_/FILE_TIMEOUT_S) "
                f"({slowest:g}s) plus EXAI_QUEUE_TIMEOUT_S ({settings.EXAI_QUEUE_TIMEOUT_S:g}s), so that a slow "
                "provider fails with its own clear `timeout` before the tool's deadline.",
                hint=f"Raise EXAI_TOOL_TIMEOUT_S above {slowest + settings.EXAI_QUEUE_TIMEOUT_S:g}.",
                id="exai.E004",
            )
        )
    if settings.EXAI_HEARTBEAT_S > 5:
        problems.append(
            Error(
                f"EXAI_HEARTBEAT_S={settings.EXAI_HEARTBEAT_S:g} is over 5 s; "
                "clients expect a heartbeat at least every 5 s.",
                hint="Set EXAI_HEARTBEAT_S to 5 or less.",
                id="exai.E005",
            )
        )
    return problems
