"""Delete conversation threads past their expiry, with their turns and workflow steps."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tools_app.conversations import conversations_purge_expired


class Command(BaseCommand):
    help = (
        "Delete expired conversation threads (EXAI_CONVERSATION_TTL_HOURS after their last turn) with their "
        "messages and workflow steps. Server processes also do this every EXAI_THREAD_PURGE_INTERVAL_S."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        purged = conversations_purge_expired(dry_run=options["dry_run"])
        if options["dry_run"]:
            self.stdout.write(
                f"would delete {purged.threads} expired thread(s) with {purged.messages} message(s) "
                "(dry run, nothing changed)"
            )
        elif options["verbosity"] >= 1:
            self.stdout.write(
                self.style.SUCCESS(f"deleted {purged.threads} expired thread(s) with {purged.messages} message(s)")
            )
