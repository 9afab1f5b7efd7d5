from django.contrib import admin

from exai_site.staff import OwnedRowsAdmin, ReadOnlyAdmin
from metrics_app.models import Baseline, BaselineSample, LatencySample


@admin.register(LatencySample)
class LatencySampleAdmin(ReadOnlyAdmin):
    """Samples are measured, never typed in or edited."""

    list_display = [
        "created",
        "tool",
        "provider",
        "model",
        "status",
        "total_latency_ms",
        "processing_ms",
        "overhead_ms",
    ]
    list_filter = ["status", "tool", "provider"]
    search_fields = ["request_id", "model"]
    date_hierarchy = "created"
    ordering = ["-created"]
    show_full_result_count = False  # counting millions of rows on every page is slow


class BaselineSampleInline(admin.TabularInline):
    model = BaselineSample
    fields = (
        "tool",
        "provider",
        "model",
        "payload_bytes",
        "status",
        "end_to_end_ms",
        "total_latency_ms",
        "processing_ms",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(Baseline)
class BaselineAdmin(OwnedRowsAdmin, ReadOnlyAdmin):
    list_display = ["id", "kind", "owner", "url", "status", "created", "finished_at"]
    list_filter = ["kind", "status"]
    readonly_fields = ["kind", "owner", "url", "parameters", "status", "created", "finished_at"]
    inlines = [BaselineSampleInline]
