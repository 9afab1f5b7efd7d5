"""`kimi_chat_with_files`: a Kimi turn over uploaded files, read through Moonshot's file extraction."""

from __future__ import annotations

from typing import Any

from tools_app.errors import ToolError
from tools_app.providers import ResolvedModel
from tools_app.tools.base import (
    CONTINUATION_PROPERTY,
    MODEL_PROPERTY,
    TEMPERATURE_PROPERTY,
    CallContext,
    object_schema,
    resolve_tool_model,
)
from tools_app.tools.chat import ChatTool
from tools_app.tools.files import FILE_IDS_SCHEMA, PromptFile


class KimiChatWithFilesTool(ChatTool):
    name = "kimi_chat_with_files"
    description = (
        "Ask Kimi about your uploaded files (code, PDFs, documents): each file is uploaded to Moonshot "
        "once and its extracted text goes into the prompt. Continue with continuation_id."
    )
    input_schema = object_schema(
        {
            "prompt": {"type": "string", "minLength": 1, "description": "Your question about the files."},
            "files": {**FILE_IDS_SCHEMA, "minItems": 1},
            "model": {**MODEL_PROPERTY, "description": "A Kimi model (default: kimi)."},
            "temperature": TEMPERATURE_PROPERTY,
            "continuation_id": CONTINUATION_PROPERTY,
        },
        required=["prompt", "files"],
    )

    async def resolve(self, ctx: CallContext, arguments: dict[str, Any], files: list[PromptFile]) -> ResolvedModel:
        resolved = await resolve_tool_model(arguments.get("model") or "kimi")
        if resolved.provider.name != "kimi":
            raise ToolError(
                "invalid_arguments", f"{resolved.spec.name} is not a Kimi model; use chat with files for other models."
            )
        return resolved
