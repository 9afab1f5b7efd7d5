"""Measure tools through the WebSocket path and store the result as a Baseline."""

from typing import Any

from django.core.management.base import CommandParser

from metrics_app.baselines import baseline_collect, parse_size
from metrics_app.management.commands._measure import MeasuringCommand
from metrics_app.models import Baseline

BY = ("provider", "tool")


class Command(MeasuringCommand):
    help = (
        "Call --tools with --models --iterations times over --concurrency connections; store and summarise a Baseline."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--tools", default="chat", help="Comma-separated tool names (the server's).")
        parser.add_argument("--models", default="auto", help="Comma-separated models, for tools that take one.")
        parser.add_argument("--prompt-size", default="200", help="Prompt size for tools that take one: 200, 1k, …")

    def handle(self, *args: Any, **options: Any) -> None:
        token, owner = self.caller(options)
        baseline: Baseline = self.measured(
            lambda: baseline_collect(
                kind=Baseline.Kind.BASELINE,
                url=options["url"],
                token=token,
                owner=owner,
                tools=[t.strip() for t in options["tools"].split(",") if t.strip()],
                models=[m.strip() for m in options["models"].split(",") if m.strip()],
                sizes=[parse_size(options["prompt_size"])],
                iterations=options["iterations"],
                concurrency=options["concurrency"],
                on_progress=self.progress_bar(options["verbosity"]),
            )
        )
        self.report(baseline, BY, options["out"])
