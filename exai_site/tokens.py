"""The life of an access token, in one place: issued, checked, revoked.

- `token_issue`: a long-lived access token for an MCP client's configuration, recorded
  (`IssuedToken`) so it can be listed and withdrawn (`manage.py issue_token`, setup_local).
- `token_revoke_access`: a presented access token withdrawn at once (logout).
- `tokens_revoke`: a user's recorded tokens withdrawn, all or one (`manage.py revoke_token`,
  the admin's action).
- `token_is_revoked` / `token_is_live`: what the authentication (exai_site/auth.py, every
  transport) and setup_local ask.

Short-lived tokens from `POST /api/token/` are not recorded until they are revoked; their
refresh tokens are blacklisted by simplejwt on logout.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from exai_site.models import IssuedToken, IssuedTokenQuerySet


def token_issue(*, user: Any, days: float, label: str = "") -> str:
    """A long-lived access token for `user`, recorded so `revoke_token` can withdraw it."""
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(days=days))
    IssuedToken.objects.create(
        jti=token["jti"], user=user, label=label[:100], expires_at=datetime.fromtimestamp(token["exp"], tz=UTC)
    )
    return str(token)


def token_revoke_access(*, raw: str) -> bool:
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


def tokens_of(*, user: Any) -> IssuedTokenQuerySet:
    """The user's recorded tokens, newest first."""
    return IssuedToken.objects.filter(user=user)


def tokens_revoke(*, tokens: IssuedTokenQuerySet) -> int:
    """Withdraw these tokens (those not withdrawn already); how many were."""
    return tokens.revoke()


def token_is_revoked(jti: str | None) -> bool:
    return bool(jti) and IssuedToken.objects.filter(jti=jti, revoked_at__isnull=False).exists()


def token_is_live(*, jti: str, user: Any) -> bool:
    """The token was issued to `user` and not withdrawn."""
    return IssuedToken.objects.filter(jti=jti, user=user, revoked_at__isnull=True).exists()
