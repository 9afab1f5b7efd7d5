"""The caller's files as MCP resources: `exai://files/{file_id}` (registered into the tool
server's resource registry when the app loads).

Reading one gives its text when it is UTF-8, else its bytes as base64 (`blob`); a file over
tools_app.mcp_resources.MAX_READ_BYTES is refused with a pointer to the REST download. A
reference made or dropped is announced once its transaction commits.
"""

from __future__ import annotations

import base64
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from files_app.blobs import blob_open
from files_app.models import FileReference
from files_app.services import file_reference_get
from tools_app import mcp_resources
from tools_app.mcp_resources import ResourceKind, ResourceTooLarge, register_resource_kind, resource_changed


def _list(user: Any, offset: int, limit: int) -> list[dict[str, Any]]:
    references = (
        FileReference.objects.owned_by(user)
        .select_related("stored_file")
        .order_by("-created", "pk")[offset : offset + limit]
    )
    return [
        {
            "uri": FILES.uri(reference.pk),
            "name": reference.name,
            "title": reference.name,
            "description": f"Your file {reference.name} ({reference.stored_file.size:,} bytes, uploaded "
            f"{reference.created:%Y-%m-%d %H:%M} UTC); pass {reference.pk} where a tool takes a file.",
            "mimeType": _mime(reference),
            "size": reference.stored_file.size,
            "annotations": {"lastModified": reference.created.isoformat()},
        }
        for reference in references
    ]


def _mime(reference: FileReference) -> str:
    return reference.content_type or reference.stored_file.content_type or "application/octet-stream"


def _read(user: Any, ident: str) -> dict[str, Any] | None:
    reference = file_reference_get(owner=user, file_id=ident)
    if reference is None:
        return None
    stored = reference.stored_file
    if stored.size > mcp_resources.MAX_READ_BYTES:
        raise ResourceTooLarge(
            f"{reference.name} is {stored.size:,} bytes, over the {mcp_resources.MAX_READ_BYTES:,} a resource "
            f"read returns; download it from GET /api/files/{reference.pk}/content/"
        )
    with blob_open(stored.blob_name) as handle:
        data = handle.read()
    try:
        return {"mimeType": _mime(reference), "text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"mimeType": _mime(reference), "blob": base64.b64encode(data).decode()}


def _ids(user: Any, prefix: str, limit: int) -> list[str]:
    return mcp_resources.ids_starting_with(FileReference.objects.owned_by(user).order_by("-created"), prefix, limit)


FILES = ResourceKind(
    kind="files",
    variable="file_id",
    title="Uploaded file",
    description="One of your uploaded files: its text, or its bytes (base64) when it is not text.",
    mime_type="application/octet-stream",
    list_owned=_list,
    read_owned=_read,
    ids_owned=_ids,
)


def _announce(reference: FileReference, change: str) -> None:
    uri = FILES.uri(reference.pk)
    owner = reference.owner_id
    transaction.on_commit(lambda: resource_changed(owner, uri, change))


@receiver(post_save, sender=FileReference)
def _file_added(sender: type[FileReference], instance: FileReference, created: bool, **kwargs: Any) -> None:
    if created:
        _announce(instance, "created")


@receiver(post_delete, sender=FileReference)
def _file_dropped(sender: type[FileReference], instance: FileReference, **kwargs: Any) -> None:
    _announce(instance, "deleted")


def register() -> None:
    register_resource_kind(FILES)
