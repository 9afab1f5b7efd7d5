from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from metrics_app.models import LatencySample


@admin.register(LatencySample)
class LatencySampleAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
