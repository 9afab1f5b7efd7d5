"""System checks of the tool registry (run after every app's ready(), so plugged-in tools count)."""

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

from tools_app.tools import REGISTRY


@register(Tags.compatibility)
def check_tool_names(app_configs: Any, **kwargs: Any) -> list[Warning]:
    problems = []
    for variable in ("EXAI_ENABLED_TOOLS", "EXAI_DISABLED_TOOLS"):
        unknown = [name for name in getattr(settings, variable) if name not in REGISTRY]
        if unknown:
            problems.append(
                Warning(
                    f"{variable} names tools this server does not have: {', '.join(unknown)}.",
                    hint=f"Tools are: {', '.join(REGISTRY)}.",
                    id="exai.W003",
                )
            )
    return problems
