"""Summarise a stored Baseline and write its report (Markdown and an SVG of the latency distributions)."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from metrics_app.baselines import baseline_groups, baseline_report, report_table
from metrics_app.models import Baseline


class Command(BaseCommand):
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
        out = Path(options["out"] or settings.BASE_DIR / "var" / "reports" / f"{baseline.kind}-{baseline.pk}")
        files = baseline_report(baseline=baseline, by=by, out_dir=out)
        self.stdout.write(str(baseline))
        for line in report_table(baseline_groups(baseline=baseline, by=by), by):
            self.stdout.write(line)
        self.stdout.write(f"report: {files[0]}  chart: {files[1]}")
