"""Logout: the refresh token is blacklisted and the access token presented with it revoked."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.views import TokenBlacklistView

from exai_site.tokens import token_revoke_access


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
            token_revoke_access(raw=access)
        return response
