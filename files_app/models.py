"""Stored blobs (one per content), who holds them, their provider copies, and cleanup runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from exai_site.text import human_size


class StoredFileQuerySet(models.QuerySet["StoredFile"]):
    def live(self) -> StoredFileQuerySet:
        return self.filter(deleted_at__isnull=True)

    def expired(self, cutoff: datetime) -> StoredFileQuerySet:
        """Unreferenced blobs whose last reference went before `cutoff`, and any half-cleaned ones."""
        return self.filter(ref_count=0).filter(
            Q(deleted_at__isnull=True, last_referenced__lt=cutoff) | Q(deleted_at__isnull=False)
        )


class StoredFile(models.Model):
    """One blob per distinct content, shared by every reference to it."""

    sha256 = models.CharField(max_length=64, help_text="Identity of the content.")
    xxh3_128 = models.CharField(max_length=32, help_text="Fast non-cryptographic hash, for quick comparisons.")
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=200, blank=True)
    original_name = models.CharField(max_length=255, help_text="The name of its first upload.")
    blob = models.FileField(max_length=300, help_text="Where the bytes are, in Django's default storage.")
    ref_count = models.IntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    last_referenced = models.DateTimeField(help_text="When a reference was last added or dropped.")
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="Set when cleanup claims the blob.")

    objects = StoredFileQuerySet.as_manager()

    class Meta:
        constraints = [
            # The dedup guarantee: concurrent first uploads of one content meet here and all but one
            # retry as a reference. A blob being cleaned up (deleted_at set) no longer counts, so the
            # same content uploaded meanwhile starts a new blob instead of waiting for the cleanup.
            models.UniqueConstraint(
                fields=["sha256"], condition=Q(deleted_at__isnull=True), name="stored_file_unique_live_sha256"
            ),
            models.CheckConstraint(condition=Q(ref_count__gte=0), name="stored_file_ref_count_not_negative"),
            models.CheckConstraint(condition=Q(size__gte=0), name="stored_file_size_not_negative"),
        ]
        indexes = [
            # cleanup_files scans unreferenced blobs by age.
            models.Index(fields=["ref_count", "last_referenced"], name="stored_file_unreferenced"),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.size:,} bytes, {self.sha256[:12]}, x{self.ref_count})"

    @property
    def blob_name(self) -> str:
        """The blob's name in storage; a row is only ever created with its blob in place."""
        return str(self.blob.name)

    @property
    def label(self) -> str:
        """How the file is named to a model and in messages: never its bytes."""
        return f"{self.original_name} ({human_size(self.size)})"


class FileReferenceQuerySet(models.QuerySet["FileReference"]):
    def owned_by(self, user: object) -> FileReferenceQuerySet:
        return self.filter(owner=user).select_related("stored_file")


class FileReference(models.Model):
    """One user's hold on a blob: what `/api/files/<id>/` and the tools' file ids name.

    Deleting a reference (directly, or with its user) drops the blob's count: see signals.py.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stored_file = models.ForeignKey(StoredFile, on_delete=models.PROTECT, related_name="references")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="file_references")
    conversation = models.ForeignKey(
        "tools_app.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="file_references"
    )
    name = models.CharField(max_length=255, help_text="The name this user uploaded it under, made safe.")
    # What this user said about the content, and which provider copies this user's calls used:
    # dedup is invisible, so nobody sees another uploader's content type or copies.
    content_type = models.CharField(max_length=200, blank=True)
    provider_copies: models.ManyToManyField[ProviderFileUpload, Any] = models.ManyToManyField(
        "ProviderFileUpload", blank=True, related_name="sent_by", help_text="Copies this reference was sent as."
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = FileReferenceQuerySet.as_manager()

    class Meta:
        indexes = [
            # A user's files, newest first (`GET /api/files/`).
            models.Index(fields=["owner", "-created"], name="file_reference_owner_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} held by user {self.owner_id}"


class ProviderFileUpload(models.Model):
    """A blob's copy on one provider: uploaded at most once per (provider, content)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        UPLOADING = "uploading"
        UPLOADED = "uploaded"
        FAILED = "failed"
        DELETING = "deleting", "deleting (cleanup)"

    class UploadMethod(models.TextChoices):
        FILE_EXTRACT = "file-extract", "files API, purpose file-extract (Moonshot)"
        FILE = "file", "files API, purpose file (Z.ai)"

    stored_file = models.ForeignKey(StoredFile, on_delete=models.CASCADE, related_name="provider_uploads")
    provider = models.CharField(max_length=32)
    provider_file_id = models.CharField(max_length=200, blank=True)
    upload_method = models.CharField(max_length=32, choices=UploadMethod.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    extracted_content = models.TextField(blank=True, help_text="The provider's text extraction, fetched once.")
    extracted = models.BooleanField(default=False)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the running upload started.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Upload once per (provider, content). A copy being deleted by cleanup no longer
            # counts, so content uploaded again meanwhile gets a fresh copy.
            models.UniqueConstraint(
                fields=["stored_file", "provider"],
                condition=~Q(status="deleting"),
                name="provider_file_upload_once",
            ),
        ]
        indexes = [
            # smart_file_download and the orphan sweep look copies up by the provider's id.
            models.Index(fields=["provider", "provider_file_id"], name="provider_file_by_remote_id"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} copy of {self.stored_file_id}: {self.status}"


class CleanupRun(models.Model):
    """The audit row of one `cleanup_files` (or `kimi_manage_files cleanup`) run."""

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    trigger = models.CharField(max_length=32, default="command")
    dry_run = models.BooleanField(default=False)
    grace_hours = models.FloatField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    candidates = models.PositiveIntegerField(default=0)
    blobs_removed = models.PositiveIntegerField(default=0)
    bytes_freed = models.PositiveBigIntegerField(default=0)
    provider_copies_deleted = models.PositiveIntegerField(default=0)
    survived = models.PositiveIntegerField(
        default=0, help_text="Candidates referenced again before cleanup could claim them."
    )
    errors = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        kind = "dry run" if self.dry_run else "run"
        return f"cleanup {kind} {self.created:%Y-%m-%d %H:%M}: {self.blobs_removed} blobs, {self.bytes_freed:,} bytes"
