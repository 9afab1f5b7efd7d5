from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from exai_site.models import IssuedToken
from exai_site.staff import OwnedRowsAdmin
from exai_site.tokens import tokens_revoke


@admin.register(IssuedToken)
class IssuedTokenAdmin(OwnedRowsAdmin):
    """Long-lived tokens made by issue_token: listed, and revocable in bulk (never shown again)."""

    owner_lookup = "user"

    list_display = ["jti", "user", "label", "created", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    list_select_related = ["user"]
    search_fields = ["jti", "user__username", "label"]
    readonly_fields = ["jti", "user", "label", "created", "expires_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are issued with `manage.py issue_token`

    @admin.action(description="Revoke")
    def revoke(self, request: HttpRequest, queryset: QuerySet[IssuedToken]) -> None:
        revoked = tokens_revoke(tokens=IssuedToken.objects.filter(pk__in=queryset.values("pk")))
        self.message_user(request, f"Revoked {revoked} tokens.", messages.SUCCESS)
