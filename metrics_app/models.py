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
    cached_tokens = models.PositiveIntegerField(default=0, help_text="Of tokens_in, those the provider had cached.")
    reasoning_tokens = models.PositiveIntegerField(default=0, help_text="Of tokens_out, the model's reasoning.")
    cost_usd = models.FloatField(null=True, blank=True, help_text="What the call cost; empty: a model had no price.")
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


class LatencyRollup(models.Model):
    """A minute's or an hour's samples of one group, summed: counts, errors, throttle waits, and
    a DDSketch of each latency part (metrics_app/sketches.py), written as the samples are.

    Two grains: per (tool, provider, model), which summaries merge into any grouping, and per
    provider alone, which the dashboard's per-minute charts read (tool and model are "")."""

    class Grain(models.TextChoices):
        GROUP = "group"  # tool, provider and model
        PROVIDER = "provider"

    MINUTE, HOUR = 60, 3600

    grain = models.CharField(max_length=8, choices=Grain.choices)
    span_s = models.PositiveIntegerField(help_text="60 (a minute) or 3600 (an hour).")
    start = models.DateTimeField()
    tool = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    count = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    wait_sum_ms = models.FloatField(default=0.0, help_text="Global + provider slot waits, summed.")
    wait_max_ms = models.FloatField(default=0.0, help_text="The longest of those waits.")
    sketch = models.BinaryField(help_text="Each latency part's DDSketch bins (metrics_app/sketches.py).")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "span_s", "start", "tool", "provider", "model"], name="latency_rollup_unique"
            )
        ]
        indexes = [models.Index(fields=["span_s", "grain", "start"], name="latency_rollup_window")]

    def __str__(self) -> str:
        return f"{self.grain} {self.span_s}s {self.start:%Y-%m-%d %H:%M} {self.tool}/{self.provider}/{self.model}"


class RollupWindow(models.Model):
    """A sliding window kept summed (the last hour, the last day), so a summary over it reads
    one row per group instead of one per group and minute. It holds the closed minutes
    `through - minutes + 2 .. through`; the open minute is read live beside it."""

    minutes = models.PositiveIntegerField(unique=True)
    through = models.DateTimeField(null=True, blank=True, help_text="The last closed minute summed in.")

    def __str__(self) -> str:
        return f"last {self.minutes} minutes through {self.through}"


class RollupWindowGroup(models.Model):
    window = models.ForeignKey(RollupWindow, on_delete=models.CASCADE, related_name="groups")
    tool = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    count = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    sketch = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["window", "tool", "provider", "model"], name="rollup_window_group_unique")
        ]

    def __str__(self) -> str:
        return f"{self.tool}/{self.provider}/{self.model}: {self.count} calls"


class SpendDaily(models.Model):
    """What one user's calls of one tool on one model cost in a day (UTC), summed as the samples
    are written (metrics_app/spend.py): the spend API, the dashboard and `spend_report` read it."""

    day = models.DateField()
    # The caller's id, 0 for the server's own work (an investigation, a cleanup): no foreign
    # key, as for the samples, and no NULL, so that one row per key is a unique constraint.
    user_id = models.PositiveIntegerField(default=0)
    tool = models.CharField(max_length=64)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    calls = models.PositiveBigIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0, help_text="Of the priced calls.")
    unpriced_calls = models.PositiveBigIntegerField(default=0, help_text="Calls with a model that has no price.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "user_id", "tool", "provider", "model"], name="spend_daily_unique")
        ]
        indexes = [models.Index(fields=["user_id", "day"], name="spend_daily_user_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.user_id} {self.tool} {self.model}: ${self.cost_usd:.4f}"
