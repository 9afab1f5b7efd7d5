"""Prepare a local single-user server: an admin if there is none, and a token to connect with."""

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from tools_app.management.commands.issue_token import issue_access_token
from tools_app.providers import all_providers


class Command(BaseCommand):
    help = "Create a local admin if no superuser exists and print an access token and client setup."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--days", type=float, default=30.0)
        parser.add_argument("--port", type=int, default=8079)

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(options["username"], "", password)
            self.stdout.write(self.style.SUCCESS(f"Created admin {user.username!r} with password {password}"))
        token = issue_access_token(user, options["days"], label="setup_local")
        port = options["port"]
        self.stdout.write(f"Access token for {user.username!r} (valid {options['days']:g} days):\n{token}\n")
        self.stdout.write(
            "Claude Code:\n"
            f"  claude mcp add --transport http exai http://127.0.0.1:{port}/mcp "
            f'--header "Authorization: Bearer {token}"\n'
        )
        for provider in all_providers():
            state = "configured" if provider.configured else f"not configured (set {provider.enable_hint})"
            self.stdout.write(f"  {provider.label}: {state}")
        if not settings.REDIS_URL:
            self.stdout.write("Embedded mode: SQLite, in-memory channel layer, in-process throttle.")
