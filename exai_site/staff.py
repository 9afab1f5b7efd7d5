"""What the staff-only parts of the apps share: live feeds over a channel-layer group, read-only admins."""

from __future__ import annotations

from typing import Any, ClassVar

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

CLOSE_FORBIDDEN = 4403


class StaffFeedConsumer(AsyncJsonWebsocketConsumer):
    """A socket that staff watch a channel-layer group through; anyone else is told and closed (4403)."""

    group: ClassVar[str]

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.send_json({"op": "error", "error": {"code": "forbidden", "message": "staff only"}})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.joined = True
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.joined_group()

    async def joined_group(self) -> None:
        """Called once a staff member is in the group."""

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.left_group()
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def left_group(self) -> None:
        """Called when a staff member's socket closes."""


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the server's own workflows write: shown, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OwnedRowsAdmin(admin.ModelAdmin):
    """Rows that hold a user's code, prompts or tokens: staff who are not superusers see only their own.

    `owner_lookup` is the path from the model to its owning user; a path through a
    to-many relation (a blob shared by several users' references) is made distinct.
    """

    owner_lookup: ClassVar[str] = "owner"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        queryset = queryset.filter(**{self.owner_lookup: request.user})
        return queryset.distinct() if "__" in self.owner_lookup else queryset
