"""Prepare a local single-user server: an admin if there is none, and a token to connect with.

The token is kept in a private file (`var/local_token`, mode 0600) and shown again on the
next start while it is valid — not expired, not revoked, for the same admin, with more than
a day left — so a client configured once keeps working across restarts.
"""

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from exai_site.tokens import token_is_live, token_issue
from tools_app.providers import all_providers

LABEL = "setup_local"
MIN_LEFT = timedelta(days=1)


def parsed(raw: str) -> AccessToken:
    """The token, its signature (this installation's key) and expiry checked."""
    return AccessToken(raw)  # type: ignore[arg-type]  # the stubs say Token; a str is what it parses


def kept_token(path: Path, user: Any) -> str | None:
    """The token kept at `path`, if it is still good for `user`."""
    try:
        raw = path.read_text(encoding="utf-8").strip()
        token = parsed(raw)
    except (OSError, TokenError):
        return None
    if str(token.get(api_settings.USER_ID_CLAIM)) != str(user.pk):
        return None
    if datetime.fromtimestamp(token["exp"], tz=UTC) - datetime.now(tz=UTC) < MIN_LEFT:
        return None
    if not token_is_live(jti=token["jti"], user=user):
        return None
    return raw


def keep_token(path: Path, raw: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(raw + "\n")


class Command(BaseCommand):
    help = "Create a local admin if no superuser exists and print an access token and client setup."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--days", type=float, default=30.0, help="Lifetime of a new token (default 30).")
        parser.add_argument("--host", default="127.0.0.1", help="The address the server listens on.")
        parser.add_argument("--port", type=int, default=8079)
        parser.add_argument(
            "--token-file",
            type=Path,
            default=None,
            help="Where the token is kept between starts (default: var/local_token).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(options["username"], "", password)
            self.stdout.write(self.style.SUCCESS(f"Created admin {user.username!r} with password {password}"))
        path = options["token_file"] or Path(settings.BASE_DIR) / "var" / "local_token"
        token = kept_token(path, user)
        if token is None:
            token = token_issue(user=user, days=options["days"], label=LABEL)
            keep_token(path, token)
            self.stdout.write(f"New access token for {user.username!r}, kept in {path}:")
        else:
            self.stdout.write(f"Access token for {user.username!r} (the one issued before, from {path}):")
        until = datetime.fromtimestamp(parsed(token)["exp"], tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.stdout.write(f"{token}\n(valid until {until}; `manage.py revoke_token {user.username}` withdraws it)\n")
        host = "127.0.0.1" if options["host"] in ("0.0.0.0", "::", "") else options["host"]
        self.stdout.write(
            "Claude Code:\n"
            f"  claude mcp add --transport http exai http://{host}:{options['port']}/mcp "
            f'--header "Authorization: Bearer {token}"\n'
        )
        for provider in all_providers():
            state = "configured" if provider.configured else f"not configured (set {provider.enable_hint})"
            self.stdout.write(f"  {provider.label}: {state}")
        if not settings.REDIS_URL:
            self.stdout.write("Embedded mode: SQLite, in-memory channel layer, in-process throttle.")
