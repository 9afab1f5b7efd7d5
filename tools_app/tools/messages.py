"""The one builder of a model turn's messages, for chat, the workflow tools' expert and each
model of a consensus: the system prompt, the files, the newest turns of the thread that fit
the model's window beside them, and the request (with its images, for a vision model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tools_app.context_window import fit_history
from tools_app.providers import ResolvedModel
from tools_app.providers.types import ChatMessage
from tools_app.tools.base import CallContext
from tools_app.tools.files import PromptFile, file_messages
from tools_app.tools.vision import image_parts


async def turn_messages(
    ctx: CallContext,
    resolved: ResolvedModel,
    *,
    system: str,
    request: str,
    files: Sequence[PromptFile] = (),
    history: Sequence[ChatMessage] = (),
    images: list[str] | None = None,
) -> tuple[list[ChatMessage], int]:
    """The messages, and how many of the thread's turns gave way (its oldest first).

    System prompt, files and the request always go (files too big fail earlier, with a
    clear message); the thread gives way from its oldest turn.
    """
    content: Any = request
    if images:
        content = [{"type": "text", "text": request}, *await image_parts(ctx, resolved, images)]
    fixed: list[ChatMessage] = [
        {"role": "system", "content": system},
        *await file_messages(ctx, resolved, list(files)),
    ]
    kept = fit_history(resolved.spec, fixed, list(history), request)
    return [*fixed, *kept, {"role": "user", "content": content}], len(history) - len(kept)
