"""Summarise a stored Baseline and write its report (Markdown and an SVG of the latency distributions)."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from metrics_app.management.commands._measure import ReportingCommand
from metrics_app.models import Baseline


class Command(ReportingCommand):
    help = "Per provider and tool (and payload size for comparisons): p50/p95/p99, waiting vs provider time, errors."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", nargs="?", type=int, help="The baseline (default: the latest).")
        parser.add_argument("--out", help="Folder for the report (default var/reports/<kind>-<id>).")

    def handle(self, *args: Any, **options: Any) -> None:
        baselines = Baseline.objects.order_by("-created")
        baseline = baselines.filter(pk=options["id"]).first() if options["id"] else baselines.first()
        if baseline is None:
            raise CommandError("no such baseline; run collect_baseline first" if options["id"] else "no baselines yet")
        by = ("model", "payload_bytes") if baseline.kind == Baseline.Kind.COMPARISON else ("provider", "tool")
        self.report(baseline, by, options["out"])
