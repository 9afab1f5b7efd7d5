"""`smart_file_query`: one question about one file, sent wherever the file fits best."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from exai_site.text import human_size
from files_app.models import FileReference
from files_app.services import check_fits
from tools_app.errors import ToolError
from tools_app.providers import ResolvedModel, configured_providers
from tools_app.tools.base import (
    CONTINUATION_PROPERTY,
    MODEL_PROPERTY,
    TEMPERATURE_PROPERTY,
    CallContext,
    ToolResult,
    object_schema,
    resolve_tool_model,
)
from tools_app.tools.chat import ChatTool
from tools_app.tools.files import PromptFile


class SmartFileQueryTool(ChatTool):
    name = "smart_file_query"
    description = (
        "Ask one question about one uploaded file. Small text files go into the prompt; larger or binary "
        "files go to the provider whose files API takes them (Kimi up to 100 MB, GLM up to 20 MB), "
        "uploaded once per content."
    )
    input_schema = object_schema(
        {
            "file": {"type": "string", "minLength": 1, "description": "Id of your uploaded file."},
            "question": {"type": "string", "minLength": 1},
            "model": {**MODEL_PROPERTY, "description": "Model or alias; by default chosen by the file's size."},
            "temperature": TEMPERATURE_PROPERTY,
            "continuation_id": CONTINUATION_PROPERTY,
        },
        required=["file", "question"],
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        chat_arguments = {key: value for key, value in arguments.items() if key not in ("file", "question")}
        return await super().run(ctx, {**chat_arguments, "prompt": arguments["question"], "files": [arguments["file"]]})

    async def resolve(self, ctx: CallContext, arguments: dict[str, Any], files: list[PromptFile]) -> ResolvedModel:
        if not isinstance(files[0], FileReference):
            raise ToolError("invalid_arguments", "smart_file_query takes the id of an uploaded file, not a path.")
        stored = files[0].stored_file
        if arguments.get("model"):
            resolved = await resolve_tool_model(arguments["model"])
            if stored.size > settings.EXAI_EMBED_MAX_BYTES:
                check_fits(stored=stored, provider=resolved.provider)  # a clear error naming the limit
            return resolved
        if stored.size <= settings.EXAI_EMBED_MAX_BYTES:
            return await resolve_tool_model("auto")
        for provider in configured_providers():  # Kimi first: the largest files API
            if 0 < stored.size <= provider.max_file_bytes:
                return await resolve_tool_model(provider.name)
        raise ToolError(
            "invalid_arguments",
            f"{stored.label} is larger than any configured provider's files API takes "
            f"(Kimi {human_size(settings.EXAI_KIMI_MAX_FILE_BYTES)}, "
            f"GLM {human_size(settings.EXAI_GLM_MAX_FILE_BYTES)}).",
        )
