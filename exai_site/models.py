from django.conf import settings
from django.db import models
from django.utils import timezone


class IssuedTokenQuerySet(models.QuerySet["IssuedToken"]):
    def active(self) -> "IssuedTokenQuerySet":
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())

    def revoke(self) -> int:
        return self.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


class IssuedToken(models.Model):
    """A long-lived access token made by `issue_token`, so it can be listed and revoked."""

    jti = models.CharField(max_length=64, unique=True, help_text="The token's id claim.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="issued_tokens")
    label = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = IssuedTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [
            # `revoke_token USERNAME` and the admin list a user's tokens.
            models.Index(fields=["user", "-created"], name="issued_token_user_created"),
        ]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"token {self.jti[:8]}… of {self.user} ({state})"
