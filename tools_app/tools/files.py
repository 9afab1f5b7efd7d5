"""What the file tools share: the caller's file ids turned into what a model reads."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.db import database_sync_to_async

from files_app.models import FileReference
from files_app.services import file_prompt_block, file_prompt_text, file_references_resolve, provider_copy_ensure
from tools_app.errors import ToolError
from tools_app.providers import Provider, ResolvedModel, get_provider
from tools_app.providers.base import ChatMessage
from tools_app.tools.base import CallContext, ToolResult

# A documented estimate (no tokenizer for these models here): about 4 characters a token,
# and the files may fill at most this share of the model's context window.
CHARS_PER_TOKEN = 4
FILES_SHARE_OF_CONTEXT = 0.8

FILE_IDS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "maxItems": 20,
    "description": "Ids of your uploaded files (POST /api/files/ or an upload tool).",
}


async def own_references(ctx: CallContext, file_ids: list[str]) -> list[FileReference]:
    if not file_ids:
        return []  # most calls name no file: no trip to the database for them
    return await database_sync_to_async(file_references_resolve)(owner=ctx.user, file_ids=file_ids)


async def file_messages(
    ctx: CallContext, resolved: ResolvedModel, references: list[FileReference]
) -> list[ChatMessage]:
    """One system message per file: small text as it is, anything else as the provider extracted it."""
    if not references:
        return []
    await ctx.progress(f"reading {len(references)} file(s) for {resolved.spec.name}")
    texts = await asyncio.gather(
        *(file_prompt_text(reference=r, provider=resolved.provider, user_id=ctx.user.pk) for r in references)
    )
    budget = int(resolved.spec.context_window * FILES_SHARE_OF_CONTEXT)
    estimated = sum(len(text) for text in texts) // CHARS_PER_TOKEN
    if estimated > budget:
        raise ToolError(
            "invalid_arguments",
            f"the files come to about {estimated:,} tokens, over {budget:,} of {resolved.spec.name}'s "
            f"{resolved.spec.context_window:,}-token context; send fewer or smaller files.",
        )
    return [
        {"role": "system", "content": file_prompt_block(reference.name, text)}
        for reference, text in zip(references, texts, strict=True)
    ]


def files_provider(name: str) -> Provider:
    """A provider with a files API that is configured here, or the error saying how to get one."""
    provider = get_provider(name)
    if not provider.configured:
        raise provider.unavailable()
    return provider


async def upload_copies(ctx: CallContext, provider: Provider, references: list[FileReference]) -> ToolResult:
    """Make sure each file has a copy on `provider` (in parallel, each through the throttle)."""
    await ctx.progress(f"uploading {len(references)} file(s) to {provider.label}")
    copies = await asyncio.gather(
        *(provider_copy_ensure(stored=r.stored_file, provider=provider, user_id=ctx.user.pk) for r in references)
    )
    listed = [
        {
            "file_id": str(reference.id),
            "name": reference.name,
            "size": reference.stored_file.size,
            "provider_file_id": copy.provider_file_id,
        }
        for reference, copy in zip(references, copies, strict=True)
    ]
    return ToolResult(json.dumps({"provider": provider.name, "files": listed}, indent=2), {"provider": provider.name})
