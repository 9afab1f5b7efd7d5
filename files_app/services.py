"""File workflows: ingest with dedup, references, one provider copy per content, prompt text.

Cleanup lives in cleanup.py. Every function here is keyword-only and called alike from
the REST API, the tools, the admin and the management commands.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import unicodedata
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from exai_site.text import human_size
from files_app.blobs import (
    HashedBlob,
    blob_delete,
    blob_from_chunks,
    blob_local_path,
    blob_open,
    blob_place,
)
from files_app.models import CleanupRun, FileReference, ProviderFileUpload, StoredFile
from tools_app.errors import ToolError
from tools_app.providers import Provider, ProviderError

if TYPE_CHECKING:
    from tools_app.calls import CallContext

logger = logging.getLogger(__name__)

# Every file this server uploads to a provider is named with this prefix, so the orphan
# sweep deletes only copies it made itself, never other files under the same API key.
PROVIDER_NAME_PREFIX = "exai-"
_INGEST_ATTEMPTS = 5


def safe_name(name: str) -> str:
    """The file's own name without any directory part or control character.

    Names are only ever shown, never used as paths (blobs are stored under their hash),
    so this is about keeping listings and prompts clean, not about safety of storage.
    """
    base = os.path.basename(str(name).replace("\\", "/"))
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    return base[:255] or "upload"


# --- Ingest ------------------------------------------------------------------------------------


def file_ingest(
    *,
    owner: Any,
    blob: HashedBlob,
    name: str,
    content_type: str = "",
    conversation: Any = None,
) -> FileReference:
    """Give `owner` a reference to the blob's content, storing the bytes only if they are new.

    Concurrent uploads of the same content end with one blob and one reference each: the
    first to commit creates the blob (the live-sha256 unique constraint), every other one
    takes a reference to it and its own copy is discarded. The temporary file is always gone
    afterwards.
    """
    name = safe_name(name)
    placed: str | None = None
    try:
        for _ in range(_INGEST_ATTEMPTS):
            reference = _reference_live_blob(
                owner=owner, sha256=blob.sha256, name=name, content_type=content_type[:200], conversation=conversation
            )
            if reference is not None:
                return reference
            if placed is None:
                # Placing the bytes may be slow on a remote storage: outside any transaction.
                placed = blob_place(blob)
            try:
                with transaction.atomic():
                    stored = StoredFile.objects.create(
                        sha256=blob.sha256,
                        xxh3_128=blob.xxh3_128,
                        size=blob.size,
                        content_type=content_type[:200],
                        original_name=name,
                        blob=placed,
                        ref_count=1,
                        last_referenced=timezone.now(),
                    )
                    reference = FileReference.objects.create(
                        stored_file=stored,
                        owner=owner,
                        conversation=conversation,
                        name=name,
                        content_type=content_type[:200],
                    )
            except IntegrityError:
                continue  # another upload of this content created the blob first: reference it
            placed = None  # the row owns the stored bytes now
            logger.info("stored %s as blob %s (%s)", name, blob.sha256[:12], human_size(blob.size))
            return reference
        raise RuntimeError(f"could not store content {blob.sha256[:12]} in {_INGEST_ATTEMPTS} attempts")
    finally:
        blob.discard()
        if placed is not None:
            blob_delete(placed)


def _reference_live_blob(
    *, owner: Any, sha256: str, name: str, content_type: str, conversation: Any
) -> FileReference | None:
    with transaction.atomic():
        # The conditional UPDATE locks the row: cleanup cannot claim it until this commits,
        # and a blob that cleanup already claimed (deleted_at set) is not matched at all.
        matched = (
            StoredFile.objects.live()
            .filter(sha256=sha256)
            .update(ref_count=F("ref_count") + 1, last_referenced=timezone.now())
        )
        if not matched:
            return None
        stored = StoredFile.objects.live().get(sha256=sha256)
        return FileReference.objects.create(
            stored_file=stored, owner=owner, conversation=conversation, name=name, content_type=content_type
        )


def file_reference_by_hash(
    *, owner: Any, sha256: str, name: str, content_type: str = "", conversation: Any = None
) -> FileReference | None:
    """A new reference, named `name`, to content the caller already holds (by its SHA-256);
    None when the caller holds no such content, so the bytes must be sent. Scoped to the
    caller: another user's upload of the same content is never revealed (nor reused)."""
    held = FileReference.objects.owned_by(owner).filter(
        stored_file__sha256=sha256, stored_file__deleted_at__isnull=True
    )
    if not held.exists():
        return None
    return _reference_live_blob(
        owner=owner, sha256=sha256, name=name, content_type=content_type[:200], conversation=conversation
    )


# --- References ----------------------------------------------------------------------------------


def _as_uuid(file_id: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(file_id))
    except ValueError:
        return None


def file_reference_get(*, owner: Any, file_id: Any) -> FileReference | None:
    """The caller's reference with that id, or None (unknown, malformed, or someone else's)."""
    key = _as_uuid(file_id)
    return None if key is None else FileReference.objects.owned_by(owner).filter(pk=key).first()


def file_reference_drop(*, owner: Any, file_id: Any) -> bool:
    """Drop one of the caller's references; the blob's count falls with it (signals.py)."""
    reference = file_reference_get(owner=owner, file_id=file_id)
    if reference is None:
        return False
    reference.delete()
    return True


def file_references_resolve(*, owner: Any, file_ids: list[str]) -> list[FileReference]:
    """The caller's references for tool arguments, in order; ToolError naming the first unknown id."""
    keys = {file_id: _as_uuid(file_id) for file_id in file_ids}
    found = FileReference.objects.owned_by(owner).in_bulk([key for key in keys.values() if key is not None])
    references = []
    for file_id in file_ids:
        reference = found.get(keys[file_id])
        if reference is None:
            raise ToolError(
                "invalid_arguments",
                f"file {file_id!r} is not among your files; upload it first (POST /api/files/ or the "
                "upload tools) and pass the id it returns.",
            )
        references.append(reference)
    return references


def file_read_text(*, stored: StoredFile) -> str | None:
    """The blob as UTF-8 text, or None when it is not text."""
    with blob_open(stored.blob_name) as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# --- Provider copies -----------------------------------------------------------------------------


def _stale_claim_age() -> timedelta:
    # An upload claimed longer ago than any upload can take belongs to a process that died.
    return timedelta(seconds=settings.EXAI_FILE_TIMEOUT_S + settings.EXAI_QUEUE_TIMEOUT_S + 30)


def _copy_row(stored: StoredFile, provider: Provider) -> ProviderFileUpload:
    upload, _ = ProviderFileUpload.objects.exclude(status=ProviderFileUpload.Status.DELETING).get_or_create(
        stored_file=stored, provider=provider.name, defaults={"upload_method": provider.file_purpose}
    )
    return upload


def _claim_copy(upload_id: int) -> bool:
    Status = ProviderFileUpload.Status
    now = timezone.now()
    claimable = Q(status__in=[Status.PENDING, Status.FAILED]) | Q(
        status=Status.UPLOADING, claimed_at__lt=now - _stale_claim_age()
    )
    return bool(
        ProviderFileUpload.objects.filter(claimable, pk=upload_id).update(
            status=Status.UPLOADING, claimed_at=now, error=""
        )
    )


def check_fits(*, stored: StoredFile, provider: Provider) -> None:
    """Raise ToolError unless `provider` can take the blob through its files API."""
    if not provider.max_file_bytes:
        raise ToolError(
            "invalid_arguments",
            f"{stored.label} must go through a files API, and {provider.label} has none; "
            "use a Kimi or GLM model for it.",
        )
    if stored.size > provider.max_file_bytes:
        raise ToolError(
            "invalid_arguments",
            f"{stored.label} is over {provider.label}'s file limit of {human_size(provider.max_file_bytes)}; "
            f"use a provider that takes it (Kimi: {human_size(settings.EXAI_KIMI_MAX_FILE_BYTES)}) or split the file.",
        )


async def provider_copy_ensure(
    *, reference: FileReference, provider: Provider, caller: CallContext
) -> ProviderFileUpload:
    """The copy on `provider` of the reference's content, uploading it only if no copy exists or is on its way;
    the reference records that it was sent as that copy (what its owner may see and name).

    One upload per (provider, content) across every process: the upload is claimed with a
    conditional UPDATE; whoever does not win the claim waits for the winner's outcome.
    The upload itself takes the one provider path of `caller` (breaker, slots, capture).
    """
    upload = await _copy_ensure(stored=reference.stored_file, provider=provider, caller=caller)
    await reference.provider_copies.aadd(upload)
    return upload


async def _copy_ensure(*, stored: StoredFile, provider: Provider, caller: CallContext) -> ProviderFileUpload:
    check_fits(stored=stored, provider=provider)
    Status = ProviderFileUpload.Status
    deadline = time.monotonic() + settings.EXAI_FILE_TIMEOUT_S + settings.EXAI_QUEUE_TIMEOUT_S
    delay, waited = 0.02, False
    while True:
        upload = await database_sync_to_async(_copy_row)(stored, provider)
        if upload.status == Status.UPLOADED:
            return upload
        if waited and upload.status == Status.FAILED:
            # The upload this call waited for failed: report it rather than retry in a herd.
            raise ProviderError(upload.error or f"the upload to {provider.label} failed")
        if await database_sync_to_async(_claim_copy)(upload.pk):
            return await _upload_copy(upload, stored, provider, caller)
        if time.monotonic() > deadline:
            raise ProviderError(f"the upload of {stored.label} to {provider.label} is taking too long", code="timeout")
        waited = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def _upload_copy(
    upload: ProviderFileUpload, stored: StoredFile, provider: Provider, caller: CallContext
) -> ProviderFileUpload:
    rows = ProviderFileUpload.objects.filter(pk=upload.pk)

    async def send() -> str:
        async with blob_local_path(stored.blob_name) as path:
            return await provider.upload_file(
                path=path, name=f"{PROVIDER_NAME_PREFIX}{stored.sha256[:12]}-{stored.original_name}"
            )

    try:
        file_id = await caller.provider_request(provider, send, operation="file upload")
    except BaseException as exc:  # a cancelled upload must not keep its claim either
        message = exc.message if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"
        await rows.aupdate(status=ProviderFileUpload.Status.FAILED, error=message[:2000])
        raise
    await rows.aupdate(status=ProviderFileUpload.Status.UPLOADED, provider_file_id=file_id, error="")
    logger.info("uploaded blob %s to %s as %s", stored.sha256[:12], provider.name, file_id)
    upload.status, upload.provider_file_id = ProviderFileUpload.Status.UPLOADED, file_id
    return upload


async def provider_copy_text(*, reference: FileReference, provider: Provider, caller: CallContext) -> str:
    """The provider's text extraction of the reference's content, uploading it once and fetching the text once."""
    upload = await provider_copy_ensure(reference=reference, provider=provider, caller=caller)
    if upload.extracted:
        return upload.extracted_content
    text = await caller.provider_request(
        provider, lambda: provider.file_content(upload.provider_file_id), operation="file content"
    )
    await ProviderFileUpload.objects.filter(pk=upload.pk).aupdate(extracted_content=text, extracted=True)
    return text


async def file_prompt_text(*, reference: FileReference, provider: Provider, caller: CallContext) -> str:
    """What a model reads of a file: small UTF-8 text as it is, anything else as the provider extracted it."""
    stored = reference.stored_file
    if stored.size <= settings.EXAI_EMBED_MAX_BYTES:
        text = await sync_to_async(file_read_text)(stored=stored)
        if text is not None:
            return text
    return await provider_copy_text(reference=reference, provider=provider, caller=caller)


def reference_for_provider_copy(*, owner: Any, provider: str, provider_file_id: str) -> FileReference | None:
    """The caller's reference that was sent to `provider` as that copy, or None.

    Every provider file sits under this server's one API key, so a bare provider id must
    never let one user read, or learn the name of, another's file: only a copy the caller's
    own calls used counts, not one made for someone else's upload of the same content.
    """
    return (
        FileReference.objects.owned_by(owner)
        .filter(
            provider_copies__provider=provider,
            provider_copies__provider_file_id=provider_file_id,
            provider_copies__status=ProviderFileUpload.Status.UPLOADED,
        )
        .select_related("stored_file")
        .first()
    )


def file_ingest_text(*, owner: Any, text: str, name: str) -> FileReference:
    """Store text made on the server (an extraction) as one of the caller's files."""
    return file_ingest(
        owner=owner,
        blob=blob_from_chunks([text.encode("utf-8")]),
        name=name,
        content_type="text/plain; charset=utf-8",
    )


def files_status() -> dict[str, Any]:
    """What is kept (live blobs, their bytes, the unreferenced ones) and the last real cleanup."""
    stored = StoredFile.objects.live().aggregate(
        blobs=Count("id"), bytes=Sum("size"), unreferenced=Count("id", filter=Q(ref_count=0))
    )
    last_cleanup = CleanupRun.objects.filter(dry_run=False).order_by("-created").first()
    return {
        "blobs": stored["blobs"],
        "bytes": stored["bytes"] or 0,
        "unreferenced": stored["unreferenced"],
        "last_cleanup": None
        if last_cleanup is None
        else {
            "at": last_cleanup.created.isoformat(),
            "status": last_cleanup.status,
            "blobs_removed": last_cleanup.blobs_removed,
            "bytes_freed": last_cleanup.bytes_freed,
            "provider_copies_deleted": last_cleanup.provider_copies_deleted,
        },
    }
