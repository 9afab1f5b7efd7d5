"""Send the same prompts, at several sizes, to several models through the production path; compare."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from metrics_app.baselines import baseline_collect, baseline_groups, baseline_report, parse_size, report_table
from metrics_app.management.commands._measure import MeasuringCommand
from metrics_app.models import Baseline

BY = ("model", "payload_bytes")


class Command(MeasuringCommand):
    help = "Call chat with each of --models at each of --payload-sizes, --iterations times; store and compare."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--models", required=True, help="Comma-separated models, e.g. kimi-k2-0905-preview,glm-4.6")
        parser.add_argument("--payload-sizes", default="1k,10k,100k", help="Prompt sizes: 1k,10k,100k")

    def handle(self, *args: Any, **options: Any) -> None:
        token, owner = self.caller(options)
        models = [m.strip() for m in options["models"].split(",") if m.strip()]
        if len(models) < 1:
            raise CommandError("--models names at least one model")
        sizes = self.measured(lambda: [parse_size(s) for s in options["payload_sizes"].split(",") if s.strip()])
        baseline: Baseline = self.measured(
            lambda: baseline_collect(
                kind=Baseline.Kind.COMPARISON,
                url=options["url"],
                token=token,
                owner=owner,
                tools=["chat"],
                models=models,
                sizes=sizes,
                iterations=options["iterations"],
                concurrency=options["concurrency"],
                on_progress=self.progress_bar(options["verbosity"]),
            )
        )
        out = Path(options["out"] or settings.BASE_DIR / "var" / "reports" / f"comparison-{baseline.pk}")
        files = baseline_report(baseline=baseline, by=BY, out_dir=out)
        self.stdout.write(self.style.SUCCESS(f"comparison {baseline.pk}: {baseline.samples.count()} calls"))
        for line in report_table(baseline_groups(baseline=baseline, by=BY), BY):
            self.stdout.write(line)
        self.stdout.write(f"report: {files[0]}")
