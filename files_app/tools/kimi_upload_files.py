"""`kimi_upload_files`: put uploaded files on Moonshot's files API, once per content."""

from __future__ import annotations

from typing import Any

from files_app.attachments import own_references, upload_copies
from tools_app.providers import configured_provider
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema
from tools_app.tools.files import FILE_IDS_SCHEMA


class KimiUploadFilesTool(Tool):
    name = "kimi_upload_files"
    description = (
        "Upload your files to Moonshot (Kimi) for text extraction, in parallel; a file already there is not "
        "sent again. Returns each file's Moonshot id."
    )
    input_schema = object_schema({"files": {**FILE_IDS_SCHEMA, "minItems": 1}}, required=["files"])

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        provider = configured_provider("kimi")
        return await upload_copies(ctx, provider, await own_references(ctx, arguments["files"]))
