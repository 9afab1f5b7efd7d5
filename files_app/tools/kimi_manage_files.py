"""`kimi_manage_files`: list your files and their Kimi copies, drop one, or (staff) clean up."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import F

from files_app.cleanup import files_cleanup, provider_orphans_delete
from files_app.models import FileReference, ProviderFileUpload
from files_app.services import file_reference_drop
from tools_app.errors import ToolError
from tools_app.providers import configured_provider
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema


def _listing(owner: Any) -> list[dict[str, Any]]:
    references = list(FileReference.objects.owned_by(owner).select_related("stored_file").order_by("-created")[:500])
    # Only the copies this user's own calls used: another uploader's copy of the same content stays unseen.
    copies = {
        copy.reference_id: copy
        for copy in ProviderFileUpload.objects.filter(provider="kimi", sent_by__in=[r.id for r in references])
        .exclude(status=ProviderFileUpload.Status.DELETING)
        .annotate(reference_id=F("sent_by"))
    }
    return [
        {
            "file_id": str(reference.id),
            "name": reference.name,
            "size": reference.stored_file.size,
            "kimi": {"status": copy.status, "provider_file_id": copy.provider_file_id}
            if (copy := copies.get(reference.id))
            else None,
        }
        for reference in references
    ]


class KimiManageFilesTool(Tool):
    name = "kimi_manage_files"
    profile = "standard"
    description = (
        "Manage your files: `list` them with their Kimi copies, `delete` one (drops your reference; the copy "
        "goes when nobody uses the content), or `cleanup` (staff: expired blobs and orphaned Kimi copies)."
    )
    input_schema = object_schema(
        {
            "action": {"type": "string", "enum": ["list", "delete", "cleanup"]},
            "file": {"type": "string", "minLength": 1, "description": "With delete: your file id."},
            "dry_run": {"type": "boolean", "description": "With cleanup: report, change nothing."},
        },
        required=["action"],
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        action = arguments["action"]
        if action == "list":
            answer: dict[str, Any] = {"files": await database_sync_to_async(_listing)(ctx.user)}
        elif action == "delete":
            if "file" not in arguments:
                raise ToolError("invalid_arguments", "delete needs `file`, the id of one of your files.")
            if not await database_sync_to_async(file_reference_drop)(owner=ctx.user, file_id=arguments["file"]):
                raise ToolError("invalid_arguments", f"file {arguments['file']!r} is not among your files.")
            answer = {"deleted": arguments["file"]}
        else:
            answer = await self._cleanup(ctx, dry_run=bool(arguments.get("dry_run")))
        return ToolResult(json.dumps(answer, indent=2), {"provider": "kimi"})

    async def _cleanup(self, ctx: CallContext, *, dry_run: bool) -> dict[str, Any]:
        if not getattr(ctx.user, "is_staff", False):
            raise ToolError("forbidden", "cleanup is for staff: it removes files of every user.")
        provider = configured_provider("kimi")
        await ctx.progress("looking for orphaned Kimi copies")
        orphans = await provider_orphans_delete(provider=provider, dry_run=dry_run, caller=ctx)
        await ctx.progress("removing expired blobs")
        run = await database_sync_to_async(files_cleanup)(
            grace_hours=settings.EXAI_FILE_GRACE_HOURS, dry_run=dry_run, trigger="tool"
        )
        return {
            "dry_run": dry_run,
            "orphaned_kimi_copies": [orphan.id for orphan in orphans],
            "blobs_removed": run.blobs_removed if not dry_run else run.candidates,
            "bytes_freed": run.bytes_freed,
            "provider_copies_deleted": run.provider_copies_deleted,
            "errors": run.errors,
        }
