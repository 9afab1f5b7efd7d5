"""Recompute the latency rollups from the raw samples (after a restore, or to check them)."""

import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from metrics_app.models import LatencySample
from metrics_app.rollups import floor_hour, rebuild_rollups


class Command(BaseCommand):
    help = (
        "Recompute the minute and hour rollups from the raw latency samples of the last --hours "
        "(default: all there are). Sample writers wait meanwhile; the sliding windows start afresh."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=float, default=None, help="Only this far back (whole hours).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["hours"] is not None and options["hours"] <= 0:
            raise CommandError("--hours must be positive")
        if options["hours"] is not None:
            since = timezone.now() - timedelta(hours=options["hours"])
        else:
            oldest = LatencySample.objects.order_by("created").values_list("created", flat=True).first()
            since = oldest or timezone.now()
        since = floor_hour(since)
        total = LatencySample.objects.filter(created__gte=since).count()
        bar = None
        if options["verbosity"] >= 1:
            bar = tqdm(total=total, unit="sample", desc="rolling up", file=sys.stderr, unit_scale=True)
        try:
            read = rebuild_rollups(since=since, on_progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(self.style.SUCCESS(f"rolled up {read:,} latency samples from {since:%Y-%m-%d %H:%M} UTC"))
