"""The caller's files (uploaded ids, or allowed local paths) turned into what a model reads.

Uploaded files come through the file store port (tools_app/attachments.py); local paths are
read here, under EXAI_ALLOWED_FILE_ROOTS."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from tools_app.attachments import Attachment, file_store, prompt_block
from tools_app.context_window import estimate_tokens
from tools_app.errors import ToolError
from tools_app.providers import ResolvedModel
from tools_app.providers.types import ChatMessage
from tools_app.tools.base import CallContext

# The files may fill at most this share of the model's context window (tokens estimated as
# everywhere else: tools_app/context_window.py).
FILES_SHARE_OF_CONTEXT = 0.8

FILE_IDS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "maxItems": 20,
    "description": "Ids of your uploaded files (or absolute paths, where the server allows local files).",
}
FILES_OR_PATHS_SCHEMA = FILE_IDS_SCHEMA
_ABSOLUTE = re.compile(r"^(/|~|[A-Za-z]:[\\/])")


@dataclass(frozen=True)
class LocalFile:
    """A file on the server's own disk, under one of EXAI_ALLOWED_FILE_ROOTS (single-user setups)."""

    path: Path

    @property
    def name(self) -> str:
        return str(self.path)


PromptFile = Attachment | LocalFile


def file_label(source: PromptFile) -> str:
    return source.name if isinstance(source, LocalFile) else str(source.id)


def local_file(raw: str) -> LocalFile:
    """The path as a LocalFile, if it really lies under an allowed root (symlinks followed first)."""
    roots = settings.EXAI_ALLOWED_FILE_ROOTS
    if not roots:
        raise ToolError(
            "invalid_arguments",
            f"{raw!r} is a local path, and this server reads no local files (EXAI_ALLOWED_FILE_ROOTS is "
            "unset); upload the file (POST /api/files/ or an upload tool) and pass its id.",
        )
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ToolError("invalid_arguments", f"{raw!r}: local paths must be absolute.")
    real = path.resolve()  # follows every symlink and `..`: what would really be read
    if not any(real.is_relative_to(root) for root in roots):
        raise ToolError("forbidden", f"{raw!r} is outside the allowed file roots ({', '.join(map(str, roots))}).")
    if not real.is_file():
        raise ToolError("invalid_arguments", f"{raw!r} is not a file.")
    return LocalFile(real)


async def resolve_files(ctx: CallContext, names: list[str]) -> list[PromptFile]:
    """Uploaded file ids and (where allowed) absolute paths, in the order given."""
    locals_ = {name: local_file(name) for name in names if _ABSOLUTE.match(name)}
    references = iter(await own_references(ctx, [name for name in names if name not in locals_]))
    return [locals_[name] if name in locals_ else next(references) for name in names]


def _read_local(source: LocalFile) -> str:
    if source.path.stat().st_size > settings.EXAI_MAX_UPLOAD_BYTES:
        raise ToolError("invalid_arguments", f"{source.name} is over the upload limit; send a smaller file.")
    try:
        return source.path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ToolError(
            "invalid_arguments", f"{source.name} is not UTF-8 text; upload it so the provider can extract its text."
        ) from None


async def own_references(ctx: CallContext, file_ids: list[str]) -> list[Attachment]:
    """The caller's uploaded files by id, in order (`invalid_arguments` naming an unknown id)."""
    if not file_ids:
        return []  # most calls name no file: no trip to the database for them
    return await file_store().own(ctx.user, file_ids)


async def file_messages(ctx: CallContext, resolved: ResolvedModel, references: list[PromptFile]) -> list[ChatMessage]:
    """One system message per file: small text as it is, anything else as the provider extracted it."""
    if not references:
        return []
    await ctx.progress(f"reading {len(references)} file(s) for {resolved.spec.name}")

    async def text_of(source: PromptFile) -> str:
        if isinstance(source, LocalFile):
            return await asyncio.to_thread(_read_local, source)
        return await file_store().prompt_text(ctx, source, resolved.provider)

    texts = await asyncio.gather(*(text_of(source) for source in references))
    budget = int(resolved.spec.context_window * FILES_SHARE_OF_CONTEXT)
    estimated = sum(estimate_tokens(text) for text in texts)
    if estimated > budget:
        raise ToolError(
            "invalid_arguments",
            f"the files come to about {estimated:,} tokens, over {budget:,} of {resolved.spec.name}'s "
            f"{resolved.spec.context_window:,}-token context; send fewer or smaller files.",
        )
    return [
        {"role": "system", "content": prompt_block(reference.name, text)}
        for reference, text in zip(references, texts, strict=True)
    ]
