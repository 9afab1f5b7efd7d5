from django.db import models
from django.db.models import Q


class ErrorInvestigation(models.Model):
    """One distinct error (type, normalised message, innermost project frame), however often it occurs."""

    class Status(models.TextChoices):
        PENDING = "pending"
        INVESTIGATING = "investigating"
        INVESTIGATED = "investigated"
        FAILED = "failed"

    class Triage(models.TextChoices):
        UNRESOLVED = "unresolved"
        RESOLVED = "resolved"
        IGNORED = "ignored"

    class Substatus(models.TextChoices):
        NEW = "new", "new (first 7 days)"
        ONGOING = "ongoing"
        ESCALATING = "escalating"
        REGRESSED = "regressed"

    error_hash = models.CharField(max_length=64)
    error_type = models.CharField(max_length=200)
    error_message = models.TextField(help_text="The message with volatile parts (ids, numbers, paths) normalised.")
    location = models.CharField(max_length=300, help_text="The innermost frame of this project's code.")
    error_context = models.JSONField(default=dict, blank=True, help_text="The latest occurrence, secrets scrubbed.")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    investigation_result = models.JSONField(null=True, blank=True)
    fix_recommendation = models.JSONField(null=True, blank=True)
    model_used = models.CharField(max_length=128, blank=True)
    investigation_duration_ms = models.FloatField(null=True, blank=True)

    triage = models.CharField(max_length=16, choices=Triage.choices, default=Triage.UNRESOLVED)
    substatus = models.CharField(max_length=16, choices=Substatus.choices, default=Substatus.NEW)
    resolved = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_notes = models.TextField(blank=True)

    occurrence_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_occurrence_at = models.DateTimeField()
    # Escalation: this hour's count against a decaying average of earlier hours.
    current_hour = models.DateTimeField(null=True, blank=True)
    current_hour_count = models.PositiveIntegerField(default=0)
    hourly_average = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            # The dedup guarantee: concurrent writers of one error meet on this and retry.
            models.UniqueConstraint(fields=["error_hash"], name="error_investigation_unique_hash"),
            models.CheckConstraint(
                # `resolved` (the original design's field) always agrees with the triage state.
                condition=Q(resolved=True, triage="resolved") | Q(resolved=False, triage__in=["unresolved", "ignored"]),
                name="error_investigation_resolved_matches_triage",
            ),
        ]
        indexes = [
            # The triage list: unresolved first, most recent first.
            models.Index(fields=["triage", "-last_occurrence_at"], name="error_triage_recent"),
            # The investigation worker finds pending work by status.
            models.Index(fields=["status"], name="error_status"),
        ]

    def __str__(self) -> str:
        return f"{self.error_type}: {self.error_message[:80]} (x{self.occurrence_count})"


class ErrorHourlyCount(models.Model):
    """How often one error occurred in one hour (UTC): its occurrences over time, for the admin's chart."""

    error = models.ForeignKey(ErrorInvestigation, on_delete=models.CASCADE, related_name="hourly_counts")
    hour = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["error", "hour"], name="error_hourly_count_unique_hour")]

    def __str__(self) -> str:
        return f"{self.error_id} @ {self.hour:%Y-%m-%d %H}:00 x{self.count}"
