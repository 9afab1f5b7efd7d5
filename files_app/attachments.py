"""files_app's side of the core's file port (tools_app/attachments.py), and what its own
tools share: the caller's references by id, and copies made on a provider."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from files_app.blobs import blob_open
from files_app.models import FileReference
from files_app.services import file_prompt_text, file_references_resolve, provider_copy_ensure
from tools_app.attachments import MAX_IMAGE_BYTES
from tools_app.calls import CallContext
from tools_app.errors import ToolError
from tools_app.providers import Provider
from tools_app.tools.base import ToolResult


class UploadedFiles:
    """The FileStore the core reads the caller's uploaded files through."""

    async def own(self, user: Any, file_ids: list[str]) -> list[FileReference]:
        return await database_sync_to_async(file_references_resolve)(owner=user, file_ids=file_ids)

    async def prompt_text(self, ctx: CallContext, attachment: FileReference, provider: Provider) -> str:
        return await file_prompt_text(reference=attachment, provider=provider, caller=ctx)

    async def image_data_url(self, attachment: FileReference) -> str:
        stored = attachment.stored_file
        kind = (attachment.content_type or "").split(";")[0].strip()
        if not kind.startswith("image/"):
            raise ToolError(
                "invalid_arguments",
                f"file {attachment.id} ({attachment.name}) is not an image ({kind or 'unknown type'}).",
            )
        if stored.size > MAX_IMAGE_BYTES:
            raise ToolError(
                "invalid_arguments", f"image {attachment.name} is over {MAX_IMAGE_BYTES // (1024 * 1024)} MiB."
            )

        def read() -> bytes:
            with blob_open(stored.blob_name) as handle:
                return handle.read()

        data = await sync_to_async(read)()
        return f"data:{kind};base64,{base64.b64encode(data).decode()}"


async def own_references(ctx: CallContext, file_ids: list[str]) -> list[FileReference]:
    """The caller's references by id, in order, typed for the file tools (the store's own)."""
    return await _STORE.own(ctx.user, file_ids) if file_ids else []


_STORE = UploadedFiles()


async def upload_copies(ctx: CallContext, provider: Provider, references: list[FileReference]) -> ToolResult:
    """Make sure each file has a copy on `provider` (in parallel, each through the throttle)."""
    await ctx.progress(f"uploading {len(references)} file(s) to {provider.label}")
    copies = await asyncio.gather(
        *(provider_copy_ensure(reference=r, provider=provider, caller=ctx) for r in references)
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
