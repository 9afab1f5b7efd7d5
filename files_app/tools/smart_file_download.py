"""`smart_file_download`: a provider's text extraction of a file, saved as one of your files."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async

from files_app.attachments import own_references
from files_app.services import file_ingest_text, provider_copy_text, reference_for_provider_copy
from tools_app.errors import ToolError
from tools_app.providers import configured_provider
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


class SmartFileDownloadTool(Tool):
    name = "smart_file_download"
    profile = "standard"
    description = (
        "Save the text a provider extracted from a file (a PDF, a document) as a new file of yours, and return "
        "its id. Name the file by your file id or by its provider file id. Extractions are fetched once and cached."
    )
    input_schema = object_schema(
        {
            "provider": {"type": "string", "enum": ["kimi", "glm"], "description": "Whose extraction (default kimi)."},
            "file": {"type": "string", "minLength": 1, "description": "Id of your uploaded file."},
            "provider_file_id": {"type": "string", "minLength": 1, "description": "The provider's id of it."},
        }
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        provider = configured_provider(arguments.get("provider", "kimi"))
        if ("file" in arguments) == ("provider_file_id" in arguments):
            raise ToolError("invalid_arguments", "name the file by exactly one of `file` or `provider_file_id`.")
        if "file" in arguments:
            reference = (await own_references(ctx, [arguments["file"]]))[0]
        else:
            found = await database_sync_to_async(reference_for_provider_copy)(
                owner=ctx.user, provider=provider.name, provider_file_id=arguments["provider_file_id"]
            )
            if found is None:
                raise ToolError(
                    "invalid_arguments",
                    f"{provider.label} file {arguments['provider_file_id']!r} is not a copy of any of your files.",
                )
            reference = found
        source_name = reference.name
        await ctx.progress(f"fetching {provider.label}'s extraction of {source_name}")
        text = await provider_copy_text(reference=reference, provider=provider, caller=ctx)
        saved = await database_sync_to_async(file_ingest_text)(
            owner=ctx.user, text=text, name=f"{source_name}.{provider.name}.txt"
        )
        answer = {
            "file_id": str(saved.id),
            "name": saved.name,
            "size": len(text.encode("utf-8")),
            "source": source_name,
        }
        return ToolResult(json.dumps(answer, indent=2), {"provider": provider.name})
