"""Print a long-lived access token for USERNAME, for an MCP client's configuration."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from exai_site.tokens import token_issue


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
        self.stdout.write(token_issue(user=user, days=options["days"], label=options["label"]))
