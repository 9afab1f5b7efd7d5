"""The core's port for the caller's uploaded files: what the chat, workflow and consensus
tools need of them, provided by whichever app keeps files (files_app, from its ready()).

The core knows an uploaded file only as an `Attachment` (an id and a name). A store answers:
- `own(user, file_ids)`: the caller's files, in the order given; `ToolError` naming the
  first id that is not the caller's (another user's id reads exactly like a missing one);
- `prompt_text(ctx, attachment, provider)`: what a model reads of it (its text, or the
  provider's extraction, fetched through `ctx` so it takes the call's throttle slots);
- `image_data_url(attachment)`: the image as a data URL for a vision model.

Without a store (an installation without files_app), a file id in a call's arguments is
refused as `invalid_arguments`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from tools_app.errors import ToolError

if TYPE_CHECKING:
    from tools_app.calls import CallContext
    from tools_app.providers import Provider

# The largest image a vision model is sent, whether as a data URL or as an uploaded file.
MAX_IMAGE_BYTES = 10 * 1024 * 1024


class Attachment(Protocol):
    @property
    def id(self) -> Any: ...

    @property
    def name(self) -> str: ...


class FileStore(Protocol):
    async def own(self, user: Any, file_ids: list[str]) -> list[Any]: ...

    async def prompt_text(self, ctx: CallContext, attachment: Any, provider: Provider) -> str: ...

    async def image_data_url(self, attachment: Any) -> str: ...


_store: FileStore | None = None


def provide_file_store(store: FileStore) -> None:
    global _store
    _store = store


def file_store() -> FileStore:
    if _store is None:
        raise ToolError("invalid_arguments", "this server keeps no uploaded files; send the text in the call instead.")
    return _store


def prompt_block(name: str, text: str) -> str:
    """One file as a model sees it: fenced by its name so several files stay apart."""
    return f"--- file: {name} ---\n{text}\n--- end of file: {name} ---"
