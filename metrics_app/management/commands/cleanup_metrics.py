"""Delete latency samples older than a number of days, in batches, and rollups older than
EXAI_ROLLUP_RETENTION_DAYS (they are kept longer: the summaries and the dashboard read them)."""

import sys
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from metrics_app.models import LatencySample
from metrics_app.rollups import rollups_cleanup
from metrics_app.services import metrics_cleanup


class Command(BaseCommand):
    help = (
        "Delete latency samples older than --older-than-days (default 30), in batches of --batch, "
        "and rollups older than EXAI_ROLLUP_RETENTION_DAYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=float, default=30.0)
        parser.add_argument("--batch", type=int, default=10_000, help="Rows deleted per transaction.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than_days"] < 0 or options["batch"] < 1:
            raise CommandError("--older-than-days must be >= 0 and --batch >= 1")
        before = timezone.now() - timedelta(days=options["older_than_days"])
        bar = None
        if not options["dry_run"] and options["verbosity"] >= 1:
            # A big table deletes in many batches: a bar with rate and time left, on stderr.
            total = LatencySample.objects.filter(created__lt=before).count()
            bar = tqdm(total=total, unit="sample", desc="deleting", file=sys.stderr, unit_scale=True)
        try:
            count = metrics_cleanup(
                before=before,
                batch=options["batch"],
                dry_run=options["dry_run"],
                on_progress=bar.update if bar is not None else None,
            )
        finally:
            if bar is not None:
                bar.close()
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(self.style.SUCCESS(f"{verb} {count:,} latency samples older than {before:%Y-%m-%d %H:%M}"))
        kept_until = timezone.now() - timedelta(days=settings.EXAI_ROLLUP_RETENTION_DAYS)
        rolled = rollups_cleanup(before=kept_until, dry_run=options["dry_run"])
        self.stdout.write(self.style.SUCCESS(f"{verb} {rolled:,} rollups older than {kept_until:%Y-%m-%d %H:%M}"))
