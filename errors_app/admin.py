import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import nh3
from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

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


_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
_ALLOWED_TAGS = {"p", "em", "strong", "code", "pre", "ul", "ol", "li", "a", "blockquote", "br", "hr", "h4"}
_ALLOWED_TAGS |= {"table", "thead", "tbody", "tr", "th", "td"}


def markdown_html(text: str) -> SafeString:
    """The model's Markdown as HTML, sanitised: it is text an AI wrote about user-provoked errors,
    so no script, style, event handler or foreign markup gets through (raw HTML is not even parsed)."""
    html = _markdown.render(text or "")
    return mark_safe(nh3.clean(html, tags=_ALLOWED_TAGS, attributes={"a": {"href", "title"}}, link_rel="noopener"))


def _markdown_block(text: str) -> SafeString:
    return format_html('<div class="exai-markdown" style="max-width: 100em">{}</div>', markdown_html(text))


def occurrence_chart(hours: list[tuple[datetime, int]]) -> SafeString:
    """A small bar chart of occurrences per hour (inline SVG, no script), with its scale written out."""
    top = max((count for _, count in hours), default=0) or 1
    width, height, bar = 480, 48, 480 / max(1, len(hours))
    bars = "".join(
        f'<rect x="{index * bar:.1f}" y="{height - height * count / top:.1f}" width="{max(1.0, bar - 1):.1f}" '
        f'height="{height * count / top:.1f}" fill="#0969da"><title>{when:%Y-%m-%d %H}:00 UTC: {count}</title></rect>'
        for index, (when, count) in enumerate(hours)
    )
    first, last = (hours[0][0], hours[-1][0]) if hours else (None, None)
    caption = f"{first:%m-%d %H}:00 … {last:%m-%d %H}:00 UTC, highest {top} an hour" if first and last else ""
    return format_html(
        '<div class="exai-occurrences" style="max-width: {}px"><svg viewBox="0 0 480 {}" width="100%" '
        'preserveAspectRatio="none" role="img" aria-label="{}">{}</svg>'
        '<div style="color: #666; font-size: 11px">{}</div></div>',
        width,
        height,
        caption,
        mark_safe(bars),  # built above from numbers and dates only
        caption,
    )


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
        "latest_message",
        "location",
        "occurrence_count",
        "occurrences",
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

    # The error's own page resolves, ignores or reopens it (its notes, if edited, are saved first).
    TRIAGE_BUTTONS: dict[str, tuple[Callable[[ErrorInvestigation], int], str]] = {
        "_triage_resolve": (lambda e: services.error_resolve(error_id=e.pk, notes=e.resolution_notes), "Resolved."),
        "_triage_ignore": (lambda e: services.error_ignore(error_id=e.pk), "Ignored."),
        "_triage_reopen": (lambda e: services.error_reopen(error_id=e.pk), "Reopened."),
    }

    def response_change(self, request: HttpRequest, obj: ErrorInvestigation) -> HttpResponse:
        for button, (triage, said) in self.TRIAGE_BUTTONS.items():
            if button in request.POST:
                triage(obj)
                self.message_user(request, said, messages.SUCCESS)
                return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    @admin.display(description="message")
    def short_message(self, error: ErrorInvestigation) -> str:
        return error.error_message[:120]

    @admin.display(description="root cause (AI)")
    def root_cause(self, error: ErrorInvestigation) -> str:
        result = error.investigation_result or {}
        if error.status == ErrorInvestigation.Status.FAILED or "error" in result:
            failure = format_html(
                '<p class="exai-investigation-failed" style="color: #ba2121">'
                "<strong>The investigation failed:</strong> {}</p>",
                result.get("error") or "no answer",
            )
            raw = result.get("raw")
            if not raw:
                return failure
            return failure + format_html("<details><summary>the model's reply</summary>{}</details>", _pre(raw))
        if not result:
            return format_html("<p>{}</p>", f"not investigated yet ({error.status})")
        evidence = "\n".join(f"- {item}" for item in result.get("evidence") or [])
        confidence = result.get("confidence")
        text = str(result.get("root_cause", ""))
        if evidence:
            text += "\n\n**Evidence**\n\n" + evidence
        if confidence is not None:
            text += f"\n\n**Confidence:** {confidence}"
        return _markdown_block(text)

    @admin.display(description="fix (AI)")
    def fix(self, error: ErrorInvestigation) -> str:
        recommendation = error.fix_recommendation or {}
        if not recommendation:
            return format_html("<p>{}</p>", "—")
        steps = "\n".join(f"{i}. {step}" for i, step in enumerate(recommendation.get("fix_steps") or [], start=1))
        code = recommendation.get("code_suggestion") or ""
        if code and "```" not in code:
            code = f"```\n{code}\n```"
        return _markdown_block(f"{steps}\n\n{code}".strip())

    @admin.display(description="latest message (as it occurred)")
    def latest_message(self, error: ErrorInvestigation) -> str:
        return _pre((error.error_context or {}).get("message") or "—")

    @admin.display(description="occurrences, last 48 hours (UTC)")
    def occurrences(self, error: ErrorInvestigation) -> str:
        return occurrence_chart(services.error_occurrences_by_hour(error_id=error.pk, hours=48))

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
