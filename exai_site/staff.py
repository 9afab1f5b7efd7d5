"""What the staff-only parts of the apps share: live feeds over a channel-layer group, read-only admins."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from exai_site.auth import (
    NO_AUTHENTICATION,
    Authentication,
    authenticate_session,
    reauthenticate,
    session_key_from_headers,
)
from exai_site.outages import unreachable_service
from exai_site.sockets import CLOSE_TOO_MANY, CLOSE_UNAUTHORIZED, socket_slot

CLOSE_FORBIDDEN = 4403


class StaffFeedConsumer(AsyncJsonWebsocketConsumer):
    """A socket that staff watch a channel-layer group through; anyone else is told and closed (4403).

    It authenticates by access token or, for the dashboard page, by the admin's session
    cookie, and checks again every EXAI_TOKEN_RECHECK_S: a revoked token, an ended session or
    a user who is no longer staff stops the feed.
    """

    group: ClassVar[str]

    async def connect(self) -> None:
        await self.accept()
        auth: Authentication = self.scope.get("auth") or NO_AUTHENTICATION
        if auth.user is None and (session_key := session_key_from_headers(self.scope.get("headers", []))):
            auth = await database_sync_to_async(authenticate_session)(session_key)
        self.auth = auth
        if await self._refused():
            return
        slot = socket_slot(self.scope)
        if slot is not None and (refusal := slot.authenticate(auth.user.pk)) is not None:  # type: ignore[union-attr]
            await self._refuse("overloaded", refusal, CLOSE_TOO_MANY)
            return
        self.joined = True
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.recheck = asyncio.ensure_future(self._recheck())
        await self.joined_group()

    async def _refused(self) -> bool:
        """Refuse (and close) unless the credentials are valid and the user is staff."""
        user = self.auth.user
        if user is None and self.auth.error:
            await self._refuse("unauthorized", self.auth.error, CLOSE_UNAUTHORIZED)
        elif user is None or not user.is_active or not getattr(user, "is_staff", False) or self.auth.expired():
            await self._refuse("forbidden", "staff only", CLOSE_FORBIDDEN)
        else:
            return False
        return True

    async def _refuse(self, code: str, message: str, close_code: int) -> None:
        await self.send_json({"op": "error", "error": {"code": code, "message": message}})
        await self.close(code=close_code, reason=message)

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(max(settings.EXAI_TOKEN_RECHECK_S, 0.05))
            self.auth = await database_sync_to_async(reauthenticate)(self.auth)
            if await self._refused():
                return
            # Join again: a Redis that restarted has forgotten the group, and the feed would go
            # quiet without anyone noticing (joining twice is harmless; it refreshes the expiry).
            try:
                await self.channel_layer.group_add(self.group, self.channel_name)
            except Exception as exc:
                if unreachable_service(exc) is None:
                    raise

    async def joined_group(self) -> None:
        """Called once a staff member is in the group."""

    async def disconnect(self, code: int) -> None:
        if getattr(self, "recheck", None) is not None:
            self.recheck.cancel()
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
