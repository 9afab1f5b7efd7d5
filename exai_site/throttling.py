"""REST rate limits (DRF throttles) whose rates come from settings, read on each request.

Counts live in Django's cache: Redis when configured, so a limit holds across every
server process. Keys start with EXAI_REDIS_PREFIX, like every other key of a deployment.
A refused request gets 429 `overloaded` with a Retry-After header (see api_errors).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from exai_site.cache import owned_key


class _SettingsRateThrottle(SimpleRateThrottle):
    setting: str

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting)

    def key_for(self, owner: str) -> str:
        # Held by the user or address it counts, so nobody else's requests can evict it.
        return owned_key(owner, f"{settings.EXAI_REDIS_PREFIX}:throttle:{self.scope}")


class UserRateThrottle(_SettingsRateThrottle):
    """EXAI_API_USER_RATE requests per authenticated user."""

    scope = "user"
    setting = "EXAI_API_USER_RATE"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        return self.key_for(f"u{user.pk}") if user is not None and user.is_authenticated else None


class AnonRateThrottle(_SettingsRateThrottle):
    """EXAI_API_ANON_RATE requests per address from callers without a valid token."""

    scope = "anon"
    setting = "EXAI_API_ANON_RATE"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if user is not None and user.is_authenticated:
            return None
        return self.key_for(f"ip:{self.get_ident(request)}")


class LoginRateThrottle(_SettingsRateThrottle):
    """EXAI_LOGIN_RATE password logins per address: guessing passwords stays slow."""

    scope = "login"
    setting = "EXAI_LOGIN_RATE"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.key_for(f"ip:{self.get_ident(request)}")
