"""What the baseline commands share: the report; and for those that measure, where, as whom, with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from metrics_app.baselines import baseline_groups, baseline_report, caller, report_table
from metrics_app.models import Baseline
from tools_app.client import ExaiClientError


class ReportingCommand(BaseCommand):
    def report(self, baseline: Baseline, by: tuple[str, ...], out: str | None) -> None:
        """Write the report, print the summary table, say where the report is."""
        folder = Path(out or settings.BASE_DIR / "var" / "reports" / f"{baseline.kind}-{baseline.pk}")
        files = baseline_report(baseline=baseline, by=by, out_dir=folder)
        self.stdout.write(self.style.SUCCESS(f"{baseline.kind} {baseline.pk}: {baseline.samples.count()} calls"))
        for line in report_table(baseline_groups(baseline=baseline, by=by), by):
            self.stdout.write(line)
        self.stdout.write(f"report: {files[0]}  chart: {files[1]}")


class MeasuringCommand(ReportingCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="ws://127.0.0.1:8079/ws", help="The EXAI WebSocket to measure.")
        parser.add_argument("--token", help="An access token for that server (issue_token).")
        parser.add_argument("--user", help="Or a user of this server's database, for a server sharing it.")
        parser.add_argument("--iterations", type=int, default=10)
        parser.add_argument("--concurrency", type=int, default=1, help="Connections calling at once.")
        parser.add_argument("--out", help="Folder for the report (default var/reports/<kind>-<id>).")

    def caller(self, options: dict[str, Any]) -> tuple[str, Any]:
        if options["iterations"] < 1 or options["concurrency"] < 1:
            raise CommandError("--iterations and --concurrency must be at least 1")
        try:
            return caller(token=options["token"], username=options["user"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    def progress_bar(self, verbosity: int) -> Any:
        """A tqdm bar (calls done, rate, time left), on stderr so the report on stdout stays clean."""
        if verbosity < 1:
            return None
        from tqdm import tqdm

        bar: Any = None

        def show(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="call", desc="calls", file=sys.stderr, dynamic_ncols=True)
            bar.update(done - bar.n)
            if done == total:
                bar.close()

        return show

    def measured(self, run: Any) -> Any:
        try:
            return run()
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except ExaiClientError as exc:
            raise CommandError(f"{exc}; is the server running, and is the token valid there?") from None
        except httpx.HTTPError as exc:
            raise CommandError(f"uploading a payload file failed: {exc}") from None
