"""Remove uploaded files nobody references any more, past a grace period, with their provider copies."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from files_app.cleanup import files_cleanup
from files_app.models import CleanupRun


class Command(BaseCommand):
    help = (
        "Soft-delete unreferenced blobs older than the grace period, then delete their provider copies and "
        "storage objects; safe to run beside live uploads. Writes a CleanupRun audit row."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=None,
            help="Hours to keep unreferenced blobs (default: EXAI_FILE_GRACE_HOURS, "
            f"{settings.EXAI_FILE_GRACE_HOURS:g}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        grace = settings.EXAI_FILE_GRACE_HOURS if options["grace_hours"] is None else options["grace_hours"]
        verbosity = options["verbosity"]
        run = files_cleanup(
            grace_hours=max(0.0, grace),
            dry_run=options["dry_run"],
            trigger="command",
            on_progress=self.progress if verbosity >= 1 else None,
        )
        self.report(run, verbosity)

    def progress(self, done: int, total: int) -> None:
        self.stdout.write(f"  {done}/{total} blobs examined")

    def report(self, run: CleanupRun, verbosity: int) -> None:
        if run.dry_run:
            self.stdout.write(
                f"would remove {run.candidates} blob(s), {run.bytes_freed:,} bytes, "
                f"and {run.provider_copies_deleted} provider copies (dry run, nothing changed)"
            )
            return
        summary = (
            f"removed {run.blobs_removed} of {run.candidates} blob(s), {run.bytes_freed:,} bytes freed, "
            f"{run.provider_copies_deleted} provider copies deleted, {run.survived} referenced again"
        )
        self.stdout.write(self.style.SUCCESS(summary) if not run.errors else self.style.WARNING(summary))
        if verbosity >= 1:
            for error in run.errors:
                self.stderr.write(f"  kept for the next run: {error}")
