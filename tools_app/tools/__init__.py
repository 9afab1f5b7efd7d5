"""The tool registry: adding a tool is one module and one line here."""

from tools_app.tools.base import Tool
from tools_app.tools.chat import ChatTool
from tools_app.tools.glm_upload_file import GlmUploadFileTool
from tools_app.tools.kimi_chat_with_files import KimiChatWithFilesTool
from tools_app.tools.kimi_manage_files import KimiManageFilesTool
from tools_app.tools.kimi_upload_files import KimiUploadFilesTool
from tools_app.tools.listmodels import ListModelsTool
from tools_app.tools.smart_file_download import SmartFileDownloadTool
from tools_app.tools.smart_file_query import SmartFileQueryTool
from tools_app.tools.status import StatusTool
from tools_app.tools.version import VersionTool

REGISTRY: dict[str, Tool] = {
    tool.name: tool
    for tool in [
        ChatTool(),
        ListModelsTool(),
        VersionTool(),
        StatusTool(),
        KimiUploadFilesTool(),
        GlmUploadFileTool(),
        KimiChatWithFilesTool(),
        SmartFileQueryTool(),
        SmartFileDownloadTool(),
        KimiManageFilesTool(),
    ]
}
