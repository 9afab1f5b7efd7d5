"""Print a long-lived access token for USERNAME, for an MCP client's configuration."""

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework_simplejwt.tokens import AccessToken


def issue_access_token(user: Any, days: float, label: str = "") -> str:
    """A long-lived access token, recorded so `revoke_token` can withdraw it."""
    from exai_site.models import IssuedToken

    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(days=days))
    IssuedToken.objects.create(
        jti=token["jti"], user=user, label=label[:100], expires_at=datetime.fromtimestamp(token["exp"], tz=UTC)
    )
    return str(token)


class Command(BaseCommand):
    help = "Print a long-lived JWT access token for USERNAME (for MCP client configuration)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--days", type=float, default=30.0, help="Lifetime in days (default 30).")
        parser.add_argument("--create", action="store_true", help="Create the user if missing (no password).")
        parser.add_argument("--label", default="", help="What the token is for, shown when listing or revoking.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] <= 0:
            raise CommandError("--days must be positive.")
        User = get_user_model()
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            if not options["create"]:
                raise CommandError(f"no user {options['username']!r}; pass --create or run createsuperuser.")
            user = User.objects.create_user(username=options["username"])
            user.set_unusable_password()
            user.save(update_fields=["password"])
        if not user.is_active:
            raise CommandError(f"user {user.username!r} is inactive.")
        self.stdout.write(issue_access_token(user, options["days"], options["label"]))
