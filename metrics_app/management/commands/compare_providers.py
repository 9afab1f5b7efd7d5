"""Send the same prompts, at several sizes, to several models through the production path; compare."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from metrics_app.baselines import baseline_collect, parse_size
from metrics_app.management.commands._measure import MeasuringCommand
from metrics_app.models import Baseline

BY = ("model", "payload_bytes")


class Command(MeasuringCommand):
    help = "Call chat with each of --models at each of --payload-sizes, --iterations times; store and compare."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--models",
            required=True,
            help="Comma-separated models or aliases, e.g. kimi-k2.6,glm-5.1 (listmodels shows what is served)",
        )
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
        self.report(baseline, BY, options["out"])
