"""Remove blobs nobody references any more, and provider copies nobody knows of.

A blob is claimed with a conditional UPDATE (still unreferenced, still past the grace
period) that sets `deleted_at`; from then on no upload matches it (the live-sha256 unique
constraint ignores it), so the same content uploaded during cleanup starts a new blob
under a new storage name, and a blob referenced again before the claim is simply not
claimed. Only then is the slow I/O done, outside any transaction: provider copies are
deleted, then the storage object, then the row. A run that stops half way leaves
soft-deleted rows that the next run finishes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from files_app.blobs import blob_delete, incoming_dir
from files_app.models import CleanupRun, ProviderFileUpload, StoredFile
from files_app.services import PROVIDER_NAME_PREFIX
from tools_app.calls import CallContext, background_call
from tools_app.providers import Provider, ProviderError, get_provider
from tools_app.providers.types import ProviderFile

BATCH = 100
ProgressCallback = Callable[[int, int], None]


def files_cleanup(
    *,
    grace_hours: float,
    dry_run: bool = False,
    trigger: str = "command",
    on_progress: ProgressCallback | None = None,
) -> CleanupRun:
    """Remove unreferenced blobs past the grace period with their provider copies; return the audit row."""
    cutoff = timezone.now() - timedelta(hours=grace_hours)
    run = CleanupRun.objects.create(trigger=trigger, dry_run=dry_run, grace_hours=grace_hours)
    candidates = StoredFile.objects.expired(cutoff)
    candidate_ids = list(candidates.order_by("pk").values_list("pk", flat=True))
    run.candidates = len(candidate_ids)
    try:
        if dry_run:
            run.bytes_freed = candidates.aggregate(total=Sum("size"))["total"] or 0
            run.provider_copies_deleted = (
                ProviderFileUpload.objects.filter(stored_file__in=candidate_ids).exclude(provider_file_id="").count()
            )
        else:
            for start in range(0, len(candidate_ids), BATCH):
                _clean_batch(run, candidate_ids[start : start + BATCH], cutoff)
                if on_progress is not None:
                    on_progress(min(start + BATCH, len(candidate_ids)), len(candidate_ids))
            _sweep_incoming()
        run.status = CleanupRun.Status.FINISHED
    except Exception as exc:
        run.status = CleanupRun.Status.FAILED
        run.errors.append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        run.finished_at = timezone.now()
        run.save()
    return run


def _claim(pk: int, cutoff: Any) -> StoredFile | None:
    """Soft-delete one blob if it is still unreferenced (or already claimed by a stopped run)."""
    now = timezone.now()
    with transaction.atomic():
        fresh_claim = StoredFile.objects.filter(
            pk=pk, ref_count=0, deleted_at__isnull=True, last_referenced__lt=cutoff
        ).update(deleted_at=now)
        stored = StoredFile.objects.filter(pk=pk, ref_count=0, deleted_at__isnull=False).first()
        if stored is None:
            return None
        if fresh_claim:
            ProviderFileUpload.objects.filter(stored_file=stored).update(status=ProviderFileUpload.Status.DELETING)
    return stored


def _clean_batch(run: CleanupRun, ids: list[int], cutoff: Any) -> None:
    claimed = []
    for pk in ids:
        stored = _claim(pk, cutoff)
        if stored is None:
            run.survived += 1
        else:
            claimed.append(stored)
    copies = list(ProviderFileUpload.objects.filter(stored_file__in=claimed).exclude(provider_file_id=""))
    outcomes = async_to_sync(_delete_copies)(copies)
    failed_blobs = set()
    for copy, error in zip(copies, outcomes, strict=True):
        if error is None:
            run.provider_copies_deleted += 1
            copy.delete()
        else:
            failed_blobs.add(copy.stored_file_id)
            run.errors.append(f"{copy.provider} copy {copy.provider_file_id}: {error}")
    for stored in claimed:
        if stored.pk in failed_blobs:
            continue  # kept soft-deleted: the next run deletes the provider copy and then the blob
        blob_delete(stored.blob_name)
        deleted, _ = StoredFile.objects.filter(pk=stored.pk, ref_count=0).delete()
        if deleted:
            run.blobs_removed += 1
            run.bytes_freed += stored.size


async def _delete_copies(copies: list[ProviderFileUpload]) -> list[str | None]:
    """Delete the provider copies in parallel; each result is None or why it could not be deleted."""

    async def delete(caller: CallContext, copy: ProviderFileUpload) -> str | None:
        try:
            provider = get_provider(copy.provider)
            if not provider.configured:
                return f"{provider.label} is not configured, so its copy cannot be deleted"
            await _delete_remote(provider, copy.provider_file_id, caller)
        except (ProviderError, KeyError) as exc:
            return str(exc)
        return None

    async with background_call("cleanup_files") as caller:
        return list(await asyncio.gather(*(delete(caller, copy) for copy in copies)))


async def _delete_remote(provider: Provider, file_id: str, caller: CallContext) -> None:
    """Delete one provider file through the one provider path; one the provider no longer has counts as deleted."""
    try:
        await caller.provider_request(provider, lambda: provider.delete_file(file_id), operation="file delete")
    except ProviderError as exc:
        if exc.status != 404:
            raise


def _sweep_incoming(max_age_s: float = 24 * 3600) -> None:
    """Temporary upload files left by a process that died mid-upload."""
    cutoff = time.time() - max_age_s
    for path in incoming_dir().iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            continue  # a live upload finished (and moved its file) while we looked


# --- Orphaned provider copies ------------------------------------------------------------


async def provider_orphans(*, provider: Provider, caller: CallContext) -> list[ProviderFile]:
    """Files this server uploaded to `provider` that no row knows of (an upload whose process died).

    Only files named with this server's prefix, and older than any upload in progress, count.
    """
    files = await caller.provider_request(provider, provider.list_files, operation="file list")
    ours = [f for f in files if f.filename.startswith(PROVIDER_NAME_PREFIX)]
    known = {
        file_id
        async for file_id in ProviderFileUpload.objects.filter(
            provider=provider.name, provider_file_id__in=[f.id for f in ours]
        ).values_list("provider_file_id", flat=True)
    }
    settled = time.time() - (settings.EXAI_FILE_TIMEOUT_S + settings.EXAI_QUEUE_TIMEOUT_S + 60)
    return [f for f in ours if f.id not in known and f.created_at < settled]


async def provider_orphans_delete(
    *, provider: Provider, caller: CallContext, dry_run: bool = False
) -> list[ProviderFile]:
    orphans = await provider_orphans(provider=provider, caller=caller)
    if not dry_run:
        for orphan in orphans:
            await _delete_remote(provider, orphan.id, caller)
    return orphans
