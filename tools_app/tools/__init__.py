"""The tool registry: adding a tool is one module and one line here."""

from tools_app.tools.base import Tool
from tools_app.tools.chat import ChatTool
from tools_app.tools.listmodels import ListModelsTool
from tools_app.tools.status import StatusTool
from tools_app.tools.version import VersionTool

REGISTRY: dict[str, Tool] = {
    tool.name: tool
    for tool in [
        ChatTool(),
        ListModelsTool(),
        VersionTool(),
        StatusTool(),
    ]
}
