"""Logout: the refresh token is blacklisted and the access token presented with it revoked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.views import TokenBlacklistView

from exai_site.models import IssuedToken


def access_token_revoke(*, raw: str) -> bool:
    """Record a valid access token as revoked, so every transport refuses it from now on."""
    try:
        token = AccessToken(raw)  # type: ignore[arg-type]  # the stubs say Token; a str is what it parses
    except TokenError:
        return False
    IssuedToken.objects.update_or_create(
        jti=token["jti"],
        defaults={
            "user_id": token[api_settings.USER_ID_CLAIM],
            "label": "logout",
            "expires_at": datetime.fromtimestamp(token["exp"], tz=UTC),
            "revoked_at": timezone.now(),
        },
    )
    return True


class LogoutView(TokenBlacklistView):
    """POST `{"refresh": …}`, with the access token as `Authorization: Bearer` (or `"access"` in the body).

    The refresh token is blacklisted (it can mint no more access tokens) and the access
    token is revoked at once instead of working on until it expires.
    """

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().post(request, *args, **kwargs)
        access = request.data.get("access") if isinstance(request.data, dict) else None
        if not isinstance(access, str):
            jwt = JWTAuthentication()
            header = jwt.get_header(request)
            bearer = jwt.get_raw_token(header) if header else None
            access = bearer.decode("latin-1") if bearer else None
        if access:
            access_token_revoke(raw=access)
        return response
