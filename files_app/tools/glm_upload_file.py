"""`glm_upload_file`: put one uploaded file on Z.ai's files API, once per content."""

from __future__ import annotations

from typing import Any

from files_app.attachments import own_references, upload_copies
from tools_app.providers import configured_provider
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


class GlmUploadFileTool(Tool):
    name = "glm_upload_file"
    profile = "standard"
    description = "Upload one of your files to Z.ai (GLM), up to 20 MB; a file already there is not sent again."
    input_schema = object_schema(
        {"file": {"type": "string", "minLength": 1, "description": "Id of your uploaded file."}}, required=["file"]
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        provider = configured_provider("glm")
        return await upload_copies(ctx, provider, await own_references(ctx, [arguments["file"]]))
