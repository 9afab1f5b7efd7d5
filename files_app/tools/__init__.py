"""The file tools, registered into the core's tool registry by FilesAppConfig.ready()."""

from files_app.tools.glm_upload_file import GlmUploadFileTool
from files_app.tools.kimi_chat_with_files import KimiChatWithFilesTool
from files_app.tools.kimi_manage_files import KimiManageFilesTool
from files_app.tools.kimi_upload_files import KimiUploadFilesTool
from files_app.tools.smart_file_download import SmartFileDownloadTool
from files_app.tools.smart_file_query import SmartFileQueryTool
from tools_app.tools.base import Tool

TOOLS: list[Tool] = [
    KimiUploadFilesTool(),
    GlmUploadFileTool(),
    KimiChatWithFilesTool(),
    SmartFileQueryTool(),
    SmartFileDownloadTool(),
    KimiManageFilesTool(),
]
