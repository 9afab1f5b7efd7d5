import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def live(self) -> "ConversationQuerySet":
        return self.filter(expires_at__gt=timezone.now())


class Conversation(models.Model):
    """A thread of turns that a `continuation_id` continues, owned by one user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    tool = models.CharField(max_length=64, help_text="The tool that started the thread.")
    turn_count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        indexes = [
            # The `conversations` listing and cleanup read a user's threads newest first.
            models.Index(fields=["owner", "-updated"], name="conversation_owner_updated"),
            # Expired threads are found and purged by age (conversations_purge_expired).
            models.Index(fields=["expires_at"], name="conversation_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.tool} thread {self.id} ({self.turn_count} turns)"

    @staticmethod
    def fresh_expiry() -> datetime:
        return timezone.now() + timedelta(hours=settings.EXAI_CONVERSATION_TTL_HOURS)

    @property
    def remaining_turns(self) -> int:
        return max(0, settings.EXAI_MAX_CONVERSATION_TURNS - self.turn_count)


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    tool = models.CharField(max_length=64)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    tokens = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True, help_text="Latency metrics and call details.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role} message in {self.conversation_id}"


class Budget(models.Model):
    """What a user may spend on provider calls per day and per month (UTC days and months); the
    one without a user is everyone's default. Empty: no limit for that period."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="budget"
    )
    daily_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    monthly_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=models.Q(user__isnull=True), name="one_default_budget")
        ]

    def __str__(self) -> str:
        who = self.user or "everyone (default)"
        return f"budget of {who}: {self.daily_usd or '∞'} a day, {self.monthly_usd or '∞'} a month"
