"""One latency sample per tool call, failed or not."""

from django.conf import settings
from django.db import models


class LatencySample(models.Model):
    """Where one tool call's time went: slot waits, the provider, and the gateway's own cost."""

    OK = "ok"  # `status` of a call that succeeded; otherwise the contract's error code

    tool = models.CharField(max_length=64)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    # No database constraint: samples are written in bulk off the call path and outlive users;
    # deleting a user must not have to touch millions of samples.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False
    )
    request_id = models.CharField(max_length=200)
    status = models.CharField(max_length=32, default=OK)
    total_latency_ms = models.FloatField()
    global_sem_wait_ms = models.FloatField(default=0.0)
    provider_sem_wait_ms = models.FloatField(default=0.0)
    processing_ms = models.FloatField(default=0.0, help_text="Time in the provider call.")
    ttft_ms = models.FloatField(null=True, blank=True, help_text="Time to the first streamed token.")
    overhead_ms = models.FloatField(default=0.0, help_text="Total minus waits minus provider time: the gateway's cost.")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    bytes_in = models.PositiveBigIntegerField(default=0)
    bytes_out = models.PositiveBigIntegerField(default=0)
    cache_hit = models.BooleanField(default=False)
    created = models.DateTimeField(db_index=False)

    class Meta:
        indexes = [
            # Every summary, dashboard chart and cleanup reads a time window.
            models.Index(fields=["created"], name="latency_sample_created"),
            # Per-tool and per-provider windows (the dashboard's breakdowns).
            models.Index(fields=["tool", "created"], name="latency_tool_created"),
            models.Index(fields=["provider", "created"], name="latency_provider_created"),
            # A user's own calls, newest first (the `activity` and `toolcall_log_tail` tools).
            models.Index(fields=["user", "-created"], name="latency_user_created"),
        ]

    def __str__(self) -> str:
        return f"{self.tool} {self.status} {self.total_latency_ms:.1f} ms"


class Baseline(models.Model):
    """A measured run of calls through the WebSocket path: `collect_baseline` or `compare_providers`."""

    class Kind(models.TextChoices):
        BASELINE = "baseline"
        COMPARISON = "comparison"

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.BASELINE)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="baselines"
    )
    url = models.CharField(max_length=300)
    parameters = models.JSONField(default=dict, help_text="Tools, models, payload sizes, iterations, concurrency.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    created = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} ({self.created:%Y-%m-%d %H:%M}, {self.status})"


class BaselineSample(models.Model):
    """One call of a baseline: the client's end-to-end time beside the server's own figures."""

    baseline = models.ForeignKey(Baseline, on_delete=models.CASCADE, related_name="samples")
    tool = models.CharField(max_length=64)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    payload_bytes = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=32, default=LatencySample.OK)
    end_to_end_ms = models.FloatField(help_text="Measured by the client: send to result.")
    total_latency_ms = models.FloatField(default=0.0)
    global_sem_wait_ms = models.FloatField(default=0.0)
    provider_sem_wait_ms = models.FloatField(default=0.0)
    processing_ms = models.FloatField(default=0.0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["baseline", "provider", "tool"], name="baseline_sample_group")]

    def __str__(self) -> str:
        return f"{self.tool} {self.model} {self.status} {self.end_to_end_ms:.1f} ms"
