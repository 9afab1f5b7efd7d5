from django.contrib import admin

from exai_site.staff import OwnedRowsAdmin
from tools_app.models import Budget, Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "provider", "model", "tokens", "content", "created")
    readonly_fields = ("role", "provider", "model", "tokens", "content", "created")
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(OwnedRowsAdmin):
    list_display = ["id", "owner", "tool", "turn_count", "updated", "expires_at"]
    list_filter = ["tool"]
    list_select_related = ["owner"]
    search_fields = ["id", "owner__username"]
    readonly_fields = ["id", "owner", "tool", "turn_count", "created", "updated"]
    inlines = [MessageInline]


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    """Per-user spend limits, and the default for everyone (the row without a user)."""

    list_display = ["__str__", "user", "daily_usd", "monthly_usd", "updated"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]
