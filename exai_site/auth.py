"""JWT authentication for WebSockets and plain async views, and the admin session for staff feeds.

A token comes from an `Authorization: Bearer` header, a `?token=` query parameter
(for clients that cannot set headers) or, on the EXAI protocol, the `hello` message.
The staff feeds also take the admin's session cookie, so the dashboard page needs no token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.http.cookie import parse_cookie
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from exai_site.outages import unreachable_message, unreachable_service
from exai_site.tokens import token_is_revoked


@dataclass(frozen=True)
class Authentication:
    user: AbstractBaseUser | None
    expires_at: float | None = None
    error: str | None = None
    token: str | None = None
    session_key: str | None = None
    checked_at: float = field(default_factory=time.monotonic)

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= time.time()

    def due_for_recheck(self) -> bool:
        """Open sockets check their token again: at once when it has expired, and now and then
        anyway, since it may have been revoked or its user deactivated meanwhile."""
        return self.expired() or time.monotonic() - self.checked_at >= settings.EXAI_TOKEN_RECHECK_S


# A socket that came with no token: one shared answer (frozen), not one object per socket.
NO_AUTHENTICATION = Authentication(None)


def authenticate_token(raw: str | None) -> Authentication:
    """Validate an access token and load its user (synchronous: it queries the database)."""
    if not raw:
        return Authentication(None, error="unauthorized: no access token given")
    try:
        token = AccessToken(raw)  # type: ignore[arg-type]  # the stubs say Token; a str is what it parses
    except TokenError as exc:
        return Authentication(None, error=f"unauthorized: {exc}")
    if token_is_revoked(token.get("jti")):
        return Authentication(None, error="unauthorized: the access token has been revoked")
    user_id = token.get(api_settings.USER_ID_CLAIM)
    user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
    if user is None or not user.is_active:
        return Authentication(None, error="unauthorized: the token's user does not exist or is inactive")
    return Authentication(user, expires_at=float(token["exp"]), token=raw)


def authenticate_session(session_key: str | None) -> Authentication:
    """Load the user of a Django session (synchronous): a logged-out, expired or outdated session has none."""
    from django.contrib.auth import get_user
    from django.contrib.sessions.backends.base import SessionBase

    if not session_key:
        return Authentication(None, error="unauthorized: no session")
    store: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    # get_user checks the session's password hash too: a password change ends the session.
    user = get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]  # it reads only .session
    if not user.is_authenticated:
        return Authentication(None, error="unauthorized: the session has ended; log in again")
    return Authentication(user, expires_at=store.get_expiry_date().timestamp(), session_key=session_key)


def reauthenticate(auth: Authentication) -> Authentication:
    """Check an open socket's credentials again (synchronous): revoked, logged out, deactivated?

    With the database away the socket keeps what it had (checked again next time): a restart
    of the database must not log everyone out.
    """
    try:
        return authenticate_session(auth.session_key) if auth.session_key else authenticate_token(auth.token)
    except Exception as exc:
        if unreachable_service(exc) is None:
            raise
        return auth


def session_key_from_headers(headers: list[tuple[bytes, bytes]] | Any) -> str | None:
    for name, value in headers:
        if name.lower() == b"cookie":
            return parse_cookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
    return None


def authenticate_token_or_say_why(raw: str | None) -> Authentication:
    """authenticate_token, with an unreachable database said as the reason rather than raised."""
    try:
        return authenticate_token(raw)
    except Exception as exc:
        if (service := unreachable_service(exc)) is None:
            raise
        return Authentication(None, error=unreachable_message(service))


class RevocableJWTAuthentication(JWTAuthentication):
    """simplejwt's authentication for REST, refusing tokens that `revoke_token` withdrew."""

    def get_validated_token(self, raw_token: bytes) -> Any:
        token = super().get_validated_token(raw_token)
        if token_is_revoked(token.get("jti")):
            raise InvalidToken("the access token has been revoked")
        return token


def token_from_headers(headers: list[tuple[bytes, bytes]] | Any, query_string: bytes = b"") -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    tokens = parse_qs(query_string.decode("latin-1")).get("token")
    return tokens[0] if tokens else None
