from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from exai_site.staff import OwnedRowsAdmin, ReadOnlyAdmin
from files_app.models import CleanupRun, FileReference, ProviderFileUpload, StoredFile


class ProviderCopyInline(admin.TabularInline):
    model = ProviderFileUpload
    fields = ("provider", "provider_file_id", "upload_method", "status", "error", "created")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StoredFile)
class StoredFileAdmin(OwnedRowsAdmin, ReadOnlyAdmin):
    list_display = ["original_name", "size", "ref_count", "copies", "content_type", "last_referenced", "deleted_at"]
    list_filter = ["content_type"]
    search_fields = ["original_name", "sha256"]
    ordering = ["-created"]
    fields = readonly_fields = (
        "original_name",
        "size",
        "content_type",
        "sha256",
        "xxh3_128",
        "blob",
        "ref_count",
        "created",
        "last_referenced",
        "deleted_at",
    )
    inlines = [ProviderCopyInline]
    owner_lookup = "references__owner"

    def get_queryset(self, request: HttpRequest) -> QuerySet[StoredFile]:
        return super().get_queryset(request).prefetch_related("provider_uploads")

    @admin.display(description="provider copies")
    def copies(self, stored: StoredFile) -> str:
        return ", ".join(f"{c.provider} ({c.status})" for c in stored.provider_uploads.all()) or "—"


@admin.register(FileReference)
class FileReferenceAdmin(OwnedRowsAdmin, ReadOnlyAdmin):
    list_display = ["name", "owner", "size", "created"]
    list_select_related = ["owner", "stored_file"]
    search_fields = ["name", "owner__username", "id"]
    fields = readonly_fields = ("id", "name", "owner", "stored_file", "conversation", "created")

    @admin.display(description="size", ordering="stored_file__size")
    def size(self, reference: FileReference) -> int:
        return reference.stored_file.size


@admin.register(ProviderFileUpload)
class ProviderFileUploadAdmin(OwnedRowsAdmin, ReadOnlyAdmin):
    """The upload history: every provider copy, with its outcome."""

    owner_lookup = "stored_file__references__owner"

    list_display = ["stored_file", "provider", "status", "provider_file_id", "upload_method", "created"]
    list_filter = ["provider", "status"]
    list_select_related = ["stored_file"]
    search_fields = ["provider_file_id", "stored_file__sha256", "stored_file__original_name"]
    ordering = ["-created"]
    exclude = ["extracted_content"]


@admin.register(CleanupRun)
class CleanupRunAdmin(ReadOnlyAdmin):
    list_display = [
        "created",
        "trigger",
        "dry_run",
        "status",
        "candidates",
        "blobs_removed",
        "bytes_freed",
        "provider_copies_deleted",
        "survived",
    ]
    list_filter = ["status", "dry_run", "trigger"]
    ordering = ["-created"]
