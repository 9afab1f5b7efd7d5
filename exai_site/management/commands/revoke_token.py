"""Revoke long-lived access tokens made by issue_token: all of a user's, or one by its id."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from exai_site.tokens import tokens_of, tokens_revoke


class Command(BaseCommand):
    help = "Revoke USERNAME's issued access tokens (all, or --jti one); --list shows them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--jti", help="Revoke only the token with this id (see --list).")
        parser.add_argument("--list", action="store_true", help="List the user's tokens and change nothing.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be revoked.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user {options['username']!r}")
        tokens = tokens_of(user=user)
        if options["list"]:
            for token in tokens:
                state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
                dates = f"{token.created:%Y-%m-%d}  expires {token.expires_at:%Y-%m-%d}"
                self.stdout.write(f"{token.jti}  {dates}  {state}  {token.label}")
            return
        if options["jti"]:
            tokens = tokens.filter(jti=options["jti"])
            if not tokens.exists():
                raise CommandError(f"{options['username']} has no token {options['jti']!r}")
        pending = tokens.filter(revoked_at__isnull=True)
        if options["dry_run"]:
            self.stdout.write(f"would revoke {pending.count()} token(s) of {user}")
            return
        revoked = tokens_revoke(tokens=pending)
        self.stdout.write(self.style.SUCCESS(f"revoked {revoked} token(s) of {user}"))
