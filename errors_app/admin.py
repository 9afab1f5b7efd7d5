import json
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from errors_app import services
from errors_app.models import ErrorInvestigation


class TriageFilter(admin.SimpleListFilter):
    """Triage state, showing unresolved errors unless asked otherwise."""

    title = "triage"
    parameter_name = "triage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*ErrorInvestigation.Triage.choices, ("all", "All")]

    def choices(self, changelist: Any) -> Any:
        value = self.value() or ErrorInvestigation.Triage.UNRESOLVED
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[ErrorInvestigation]) -> QuerySet[ErrorInvestigation]:
        value = self.value() or ErrorInvestigation.Triage.UNRESOLVED
        return queryset if value == "all" else queryset.filter(triage=value)


def _pre(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return format_html('<pre style="white-space: pre-wrap; max-width: 100em">{}</pre>', text or "—")


@admin.register(ErrorInvestigation)
class ErrorInvestigationAdmin(admin.ModelAdmin):
    list_display = [
        "short_message",
        "error_type",
        "occurrence_count",
        "created_at",
        "last_occurrence_at",
        "triage",
        "substatus",
        "status",
    ]
    list_filter = [TriageFilter, "substatus", "status", "error_type"]
    search_fields = ["error_message", "error_type", "location", "error_hash"]
    ordering = ["-last_occurrence_at"]
    actions = ["resolve", "reopen", "ignore", "reinvestigate"]
    fields = DETAIL_FIELDS = (
        "error_type",
        "error_message",
        "location",
        "occurrence_count",
        "created_at",
        "last_occurrence_at",
        "triage",
        "substatus",
        "resolved_at",
        "resolution_notes",
        "status",
        "model_used",
        "investigation_duration_ms",
        "root_cause",
        "fix",
        "stack_trace",
        "context",
        "error_hash",
    )
    readonly_fields = tuple(name for name in DETAIL_FIELDS if name != "resolution_notes")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # errors are captured, not typed in

    @admin.display(description="message")
    def short_message(self, error: ErrorInvestigation) -> str:
        return error.error_message[:120]

    @admin.display(description="root cause (AI)")
    def root_cause(self, error: ErrorInvestigation) -> str:
        return _pre(error.investigation_result)

    @admin.display(description="fix (AI)")
    def fix(self, error: ErrorInvestigation) -> str:
        recommendation = error.fix_recommendation or {}
        steps = "\n".join(f"{i}. {step}" for i, step in enumerate(recommendation.get("fix_steps", []), start=1))
        code = recommendation.get("code_suggestion", "")
        return _pre(f"{steps}\n\n{code}".strip())

    @admin.display(description="stack trace")
    def stack_trace(self, error: ErrorInvestigation) -> str:
        return _pre((error.error_context or {}).get("stack_trace", ""))

    @admin.display(description="context")
    def context(self, error: ErrorInvestigation) -> str:
        context = {k: v for k, v in (error.error_context or {}).items() if k != "stack_trace"}
        return _pre(context)

    @admin.action(description="Resolve")
    def resolve(self, request: HttpRequest, queryset: QuerySet[ErrorInvestigation]) -> None:
        for error_id in queryset.values_list("pk", flat=True):
            services.error_resolve(error_id=error_id)
        self.message_user(request, f"Resolved {queryset.count()} errors.", messages.SUCCESS)

    @admin.action(description="Reopen")
    def reopen(self, request: HttpRequest, queryset: QuerySet[ErrorInvestigation]) -> None:
        for error_id in queryset.values_list("pk", flat=True):
            services.error_reopen(error_id=error_id)
        self.message_user(request, "Reopened.", messages.SUCCESS)

    @admin.action(description="Ignore")
    def ignore(self, request: HttpRequest, queryset: QuerySet[ErrorInvestigation]) -> None:
        for error_id in queryset.values_list("pk", flat=True):
            services.error_ignore(error_id=error_id)
        self.message_user(request, "Ignored.", messages.SUCCESS)

    @admin.action(description="Investigate again")
    def reinvestigate(self, request: HttpRequest, queryset: QuerySet[ErrorInvestigation]) -> None:
        queued = 0
        for error_id in queryset.values_list("pk", flat=True):
            if services.error_mark_for_investigation(error_id=error_id):
                async_to_sync(services.error_schedule_investigation)(error_id=error_id)
                queued += 1
        self.message_user(request, f"Queued {queued} investigations.", messages.SUCCESS)
