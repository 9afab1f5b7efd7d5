"""The tool registry: adding a tool is one module and one line here, or, for a feature app's
tools, one `register_tools(...)` call in its AppConfig.ready() (files_app, metrics_app).

`REGISTRY` holds every tool, the core's first, then each app's in INSTALLED_APPS order;
`enabled_tools()` the ones tools/list advertises, chosen by EXAI_TOOL_PROFILE (lean <
standard < full: each tool names the smallest profile it is in) and adjusted by
EXAI_ENABLED_TOOLS / EXAI_DISABLED_TOOLS. `version` and `listmodels` are always on. The
profile saves the assistant's context; it does not lock tools away: any tool is callable
by name unless EXAI_DISABLED_TOOLS names it.
"""

from django.conf import settings

from tools_app.tools.analyze import AnalyzeTool
from tools_app.tools.base import Tool
from tools_app.tools.challenge import ChallengeTool
from tools_app.tools.chat import ChatTool
from tools_app.tools.codereview import CodeReviewTool
from tools_app.tools.consensus import ConsensusTool
from tools_app.tools.conversations import ConversationsTool
from tools_app.tools.debug import DebugTool
from tools_app.tools.docgen import DocGenTool
from tools_app.tools.glm_web_search import GlmWebSearchTool
from tools_app.tools.health import HealthTool
from tools_app.tools.kimi_chat_with_tools import KimiChatWithToolsTool
from tools_app.tools.listmodels import ListModelsTool
from tools_app.tools.planner import PlannerTool
from tools_app.tools.precommit import PrecommitTool
from tools_app.tools.provider_capabilities import ProviderCapabilitiesTool
from tools_app.tools.refactor import RefactorTool
from tools_app.tools.secaudit import SecAuditTool
from tools_app.tools.status import StatusTool
from tools_app.tools.testgen import TestGenTool
from tools_app.tools.thinkdeep import ThinkDeepTool
from tools_app.tools.tracer import TracerTool
from tools_app.tools.version import VersionTool

REGISTRY: dict[str, Tool] = {
    tool.name: tool
    for tool in [
        ChatTool(),
        ThinkDeepTool(),
        DebugTool(),
        AnalyzeTool(),
        CodeReviewTool(),
        RefactorTool(),
        TestGenTool(),
        SecAuditTool(),
        DocGenTool(),
        TracerTool(),
        PrecommitTool(),
        PlannerTool(),
        ConsensusTool(),
        ChallengeTool(),
        ListModelsTool(),
        VersionTool(),
        StatusTool(),
        HealthTool(),
        ConversationsTool(),
        ProviderCapabilitiesTool(),
        GlmWebSearchTool(),
        KimiChatWithToolsTool(),
    ]
}

PROFILES = ("lean", "standard", "full")
ALWAYS_ON = ("version", "listmodels")

_enabled: tuple[tuple[object, ...], dict[str, Tool]] | None = None


def register_tools(tools: list[Tool]) -> None:
    """Add an app's tools to the registry (from its AppConfig.ready()); a name is taken once."""
    global _enabled
    for tool in tools:
        if REGISTRY.get(tool.name, tool) is not tool:
            raise ValueError(f"two tools are named {tool.name!r}")
        REGISTRY[tool.name] = tool
    _enabled = None


def enabled_tools() -> dict[str, Tool]:
    """The tools this server offers, in registry order (recomputed only when the settings change)."""
    global _enabled
    key = (settings.EXAI_TOOL_PROFILE, tuple(settings.EXAI_ENABLED_TOOLS), tuple(settings.EXAI_DISABLED_TOOLS))
    if _enabled is None or _enabled[0] != key:
        reach = PROFILES.index(settings.EXAI_TOOL_PROFILE)
        tools = {
            name: tool
            for name, tool in REGISTRY.items()
            if name in ALWAYS_ON
            or name in settings.EXAI_ENABLED_TOOLS
            or (PROFILES.index(tool.profile) <= reach and name not in settings.EXAI_DISABLED_TOOLS)
        }
        _enabled = (key, tools)
    return _enabled[1]
