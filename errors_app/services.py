"""Error workflows: record occurrences, triage, and the AI investigation."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jsonschema
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from errors_app.models import ErrorHourlyCount, ErrorInvestigation
from errors_app.occurrences import Pending
from tools_app.calls import background_call
from tools_app.errors import ToolError
from tools_app.providers import ProviderError, UnknownModel, resolve_model
from tools_app.throttle import Overloaded

logger = logging.getLogger(__name__)

FEED_GROUP = "errors.feed"
BACKGROUND_CHANNEL = "exai.background"
_background: set[asyncio.Task[Any]] = set()


@dataclass(frozen=True)
class Recorded:
    error_id: int
    created: bool
    regressed: bool
    count: int
    investigate: bool


HOURLY_COUNTS_KEPT = timedelta(days=30)


def _count_hour(error_id: int, hour: datetime, count: int) -> None:
    """Add `count` to the error's row for `hour` (exact with several writers), trimming old hours."""
    counts = ErrorHourlyCount.objects.filter(error_id=error_id, hour=hour)
    if counts.update(count=F("count") + count):
        return
    try:
        with transaction.atomic():
            ErrorHourlyCount.objects.create(error_id=error_id, hour=hour, count=count)
    except IntegrityError:  # another process made the row a moment ago
        counts.update(count=F("count") + count)
    ErrorHourlyCount.objects.filter(error_id=error_id, hour__lt=hour - HOURLY_COUNTS_KEPT).delete()


def error_occurrences_by_hour(*, error_id: int, hours: int = 48) -> list[tuple[datetime, int]]:
    """The error's occurrences per hour over the last `hours` (UTC), oldest first, zeros included."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    since = now - timedelta(hours=hours - 1)
    counted = dict(ErrorHourlyCount.objects.filter(error_id=error_id, hour__gte=since).values_list("hour", "count"))
    return [(since + timedelta(hours=i), counted.get(since + timedelta(hours=i), 0)) for i in range(hours)]


def error_record_occurrences(*, pending: Pending) -> Recorded:
    """Add a batch of occurrences of one error: one row per distinct error, counts never lost."""
    hour = pending.last_at.replace(minute=0, second=0, microsecond=0)
    with transaction.atomic():
        error, created = ErrorInvestigation.objects.get_or_create(
            error_hash=pending.error_hash,
            defaults={
                "error_type": pending.error_type[:200],
                "error_message": pending.message,
                "location": pending.location[:300],
                "error_context": pending.context,
                "last_occurrence_at": pending.last_at,
            },
        )
        # One UPDATE of expressions: concurrent writers (other processes) add up exactly.
        # In SQL every expression reads the row as it was before this UPDATE.
        ErrorInvestigation.objects.filter(pk=error.pk).update(
            occurrence_count=F("occurrence_count") + pending.count,
            last_occurrence_at=Greatest(F("last_occurrence_at"), Value(pending.last_at)),
            error_context=pending.context,
            hourly_average=Case(
                When(current_hour=hour, then=F("hourly_average")),
                When(current_hour__isnull=True, then=Value(0.0)),
                default=F("hourly_average") * 0.8 + F("current_hour_count") * 0.2,
            ),
            current_hour_count=Case(
                When(current_hour=hour, then=F("current_hour_count") + pending.count), default=Value(pending.count)
            ),
            current_hour=Value(hour),
        )
        # A resolved error that occurs again *after* it was resolved is reopened as regressed.
        regressed = bool(
            ErrorInvestigation.objects.filter(
                pk=error.pk, triage=ErrorInvestigation.Triage.RESOLVED, resolved_at__lt=pending.last_at
            ).update(
                triage=ErrorInvestigation.Triage.UNRESOLVED,
                resolved=False,
                substatus=ErrorInvestigation.Substatus.REGRESSED,
                status=ErrorInvestigation.Status.PENDING,
            )
        )
        _update_substatus(error.pk)
        _count_hour(error.pk, hour, pending.count)
        count = ErrorInvestigation.objects.values_list("occurrence_count", flat=True).get(pk=error.pk)
    threshold = settings.EXAI_INVESTIGATE_AFTER
    crossed = count - pending.count < threshold <= count
    return Recorded(error.pk, created, regressed, count, investigate=regressed or crossed)


def _update_substatus(error_id: int) -> None:
    rows = ErrorInvestigation.objects.filter(pk=error_id, triage=ErrorInvestigation.Triage.UNRESOLVED)
    Substatus = ErrorInvestigation.Substatus
    spike = F("hourly_average") * settings.EXAI_ESCALATION_FACTOR + settings.EXAI_ESCALATION_MIN
    rows.filter(substatus__in=[Substatus.NEW, Substatus.ONGOING], current_hour_count__gt=spike).update(
        substatus=Substatus.ESCALATING
    )
    rows.filter(substatus=Substatus.ESCALATING, current_hour_count__lte=spike).update(substatus=Substatus.ONGOING)
    rows.filter(substatus=Substatus.NEW, created_at__lt=timezone.now() - timedelta(days=7)).update(
        substatus=Substatus.ONGOING
    )


def feed_entry(error: ErrorInvestigation) -> dict[str, Any]:
    return {
        "id": error.pk,
        "error_type": error.error_type,
        "error_message": error.error_message,
        "location": error.location,
        "occurrence_count": error.occurrence_count,
        "triage": error.triage,
        "substatus": error.substatus,
        "status": error.status,
        "last_occurrence_at": error.last_occurrence_at.isoformat(),
    }


async def error_dispatch(*, recorded: list[Recorded]) -> None:
    """Announce new and recurring errors on the live feed; start the investigations they call for."""
    if not recorded:
        return
    layer = get_channel_layer()
    errors = {e.pk: e async for e in ErrorInvestigation.objects.filter(pk__in=[r.error_id for r in recorded])}
    for entry in recorded:
        error = errors.get(entry.error_id)
        if error is not None and layer is not None:
            event = "new" if entry.created else ("regressed" if entry.regressed else "recurring")
            await layer.group_send(FEED_GROUP, {"type": "error.occurred", "event": event, "error": feed_entry(error)})
        if entry.investigate:
            await error_schedule_investigation(error_id=entry.error_id)


async def error_schedule_investigation(*, error_id: int) -> None:
    """Investigate in the background: a `runworker exai.background` process with Redis, else this process."""
    if settings.REDIS_URL and (layer := get_channel_layer()) is not None:
        await layer.send(BACKGROUND_CHANNEL, {"type": "error.investigate", "error_id": error_id})
        return
    task = asyncio.ensure_future(error_investigate(error_id=error_id))
    _background.add(task)
    task.add_done_callback(_background.discard)


# --- Triage --------------------------------------------------------------------


def error_resolve(*, error_id: int, notes: str = "") -> int:
    return ErrorInvestigation.objects.filter(pk=error_id).update(
        triage=ErrorInvestigation.Triage.RESOLVED, resolved=True, resolved_at=timezone.now(), resolution_notes=notes
    )


def error_reopen(*, error_id: int) -> int:
    return ErrorInvestigation.objects.filter(pk=error_id).update(
        triage=ErrorInvestigation.Triage.UNRESOLVED,
        resolved=False,
        resolved_at=None,
        substatus=ErrorInvestigation.Substatus.ONGOING,
    )


def error_ignore(*, error_id: int) -> int:
    return ErrorInvestigation.objects.filter(pk=error_id).update(
        triage=ErrorInvestigation.Triage.IGNORED, resolved=False, resolved_at=None
    )


def error_mark_for_investigation(*, error_id: int) -> int:
    """Queue a fresh investigation unless one is running now."""
    return (
        ErrorInvestigation.objects.filter(pk=error_id)
        .exclude(status=ErrorInvestigation.Status.INVESTIGATING)
        .update(status=ErrorInvestigation.Status.PENDING)
    )


# --- Investigation ---------------------------------------------------------------

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "root_cause": {"type": "string", "minLength": 1},
        "evidence": {"type": "array", "items": {"type": "string"}},
        "fix_steps": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "code_suggestion": {"type": "string"},
        "confidence": {"enum": ["low", "medium", "high"]},
    },
    "required": ["root_cause", "evidence", "fix_steps", "code_suggestion", "confidence"],
}

INVESTIGATOR_PROMPT = (
    "You investigate errors of a production Django server that routes AI tool calls to model providers. "
    "Given an error, its stack trace and recent log lines, find the root cause and the fix. Respond with one "
    "JSON object only, with keys: root_cause (string), evidence (list of strings quoting the trace or logs), "
    "fix_steps (list of strings), code_suggestion (string, may be empty), confidence (low, medium or high)."
)


class AnswerInvalid(Exception):
    pass


def parse_answer(text: str) -> dict[str, Any]:
    """The investigator's JSON answer, validated; raise AnswerInvalid with the reason."""
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.S)
    candidate = fenced.group(1) if fenced else text[text.find("{") : text.rfind("}") + 1]
    try:
        answer = json.loads(candidate)
    except ValueError as exc:
        raise AnswerInvalid(f"not JSON: {exc}") from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(ANSWER_SCHEMA).iter_errors(answer))
    if error is not None:
        raise AnswerInvalid(f"does not match the answer schema: {error.message}")
    return answer


def _prompt(error: ErrorInvestigation) -> str:
    context = error.error_context or {}
    details = {k: v for k, v in context.items() if k not in ("stack_trace", "recent_log_lines")}
    return "\n".join(
        [
            f"Error type: {error.error_type}",
            f"Message (normalised): {error.error_message}",
            f"Where: {error.location}",
            f"Occurrences: {error.occurrence_count}",
            f"Context: {json.dumps(details)}",
            "Stack trace:",
            str(context.get("stack_trace", "(none)"))[-8000:],
            "Recent log lines:",
            "\n".join(context.get("recent_log_lines", []))[-4000:],
        ]
    )


async def error_investigate(*, error_id: int) -> bool:
    """Ask the investigator model about one error; at most one investigation per error at a time."""
    Status = ErrorInvestigation.Status
    claimed = await ErrorInvestigation.objects.filter(pk=error_id, status__in=[Status.PENDING, Status.FAILED]).aupdate(
        status=Status.INVESTIGATING
    )
    if not claimed:
        return False
    error = await ErrorInvestigation.objects.aget(pk=error_id)
    started = time.perf_counter()
    outcome: dict[str, Any] = {"status": Status.FAILED}
    try:
        resolved = await resolve_model(settings.EXAI_INVESTIGATOR_MODEL)
        outcome["model_used"] = resolved.spec.name
        messages: list[Any] = [
            {"role": "system", "content": INVESTIGATOR_PROMPT},
            {"role": "user", "content": _prompt(error)},
        ]
        # A background provider call takes the same path as a tool's, under its own "user".
        async with background_call("investigator") as caller:
            reply = await caller.call_provider(
                resolved, messages, thinking_mode="low", response_format={"type": "json_object"}
            )
        try:
            answer = parse_answer(reply.text)
        except AnswerInvalid as exc:
            outcome["investigation_result"] = {"error": str(exc), "raw": reply.text[:20_000]}
        else:
            outcome |= {
                "status": Status.INVESTIGATED,
                "investigation_result": {k: answer[k] for k in ("root_cause", "evidence", "confidence")},
                "fix_recommendation": {k: answer[k] for k in ("fix_steps", "code_suggestion")},
            }
    except (ProviderError, ToolError, UnknownModel, Overloaded) as exc:
        outcome["investigation_result"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        # Written on every path (a cancelled investigation is `failed` and can be retried).
        outcome["investigation_duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        await database_sync_to_async(ErrorInvestigation.objects.filter(pk=error_id).update)(**outcome)
    return outcome["status"] == Status.INVESTIGATED


def errors_wanting_a_look(limit: int = 8) -> list[dict[str, Any]]:
    """Unresolved errors that want a look: new, escalating or regressed, latest first."""
    wanted = [
        ErrorInvestigation.Substatus.NEW,
        ErrorInvestigation.Substatus.ESCALATING,
        ErrorInvestigation.Substatus.REGRESSED,
    ]
    rows = (
        ErrorInvestigation.objects.filter(triage=ErrorInvestigation.Triage.UNRESOLVED, substatus__in=wanted)
        .order_by("-last_occurrence_at")
        .values("id", "error_type", "error_message", "occurrence_count", "substatus", "last_occurrence_at")[:limit]
    )
    return [
        {
            "id": row["id"],
            "type": row["error_type"],
            "message": row["error_message"][:160],
            "count": row["occurrence_count"],
            "substatus": row["substatus"],
            "last": row["last_occurrence_at"].isoformat(),
        }
        for row in rows
    ]
