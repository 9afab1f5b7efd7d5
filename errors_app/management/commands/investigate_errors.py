"""Run AI investigations of captured errors now, in this process."""

import sys
from typing import Any

from asgiref.sync import async_to_sync
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from errors_app.models import ErrorInvestigation
from errors_app.services import error_investigate, error_mark_for_investigation


class Command(BaseCommand):
    help = "Investigate errors with the investigator model: the pending and failed ones, or one by id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pending", action="store_true", help="Every pending or failed error.")
        parser.add_argument("--id", type=int, dest="error_id", help="One error, even if investigated before.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be investigated.")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = self.selected(pending=options["pending"], error_id=options["error_id"])
        if options["dry_run"]:
            for error_id in ids:
                self.stdout.write(f"would investigate error {error_id}")
            return
        if options["error_id"]:
            error_mark_for_investigation(error_id=options["error_id"])
        # One event loop for them all: the providers' HTTP clients belong to the loop they started on.
        async_to_sync(self.investigate_all)(ids, options["verbosity"])

    async def investigate_all(self, ids: list[int], verbosity: int) -> None:
        # Each investigation is a model call (seconds to minutes): a bar with rate and time left, on stderr.
        bar = tqdm(total=len(ids), unit="error", desc="investigations", file=sys.stderr, disable=verbosity < 1)
        try:
            for index, error_id in enumerate(ids, start=1):
                ok = await error_investigate(error_id=error_id)
                status = await ErrorInvestigation.objects.values_list("status", flat=True).aget(pk=error_id)
                bar.update(1)
                if verbosity >= 1:
                    style = self.style.SUCCESS if ok else self.style.WARNING
                    self.stdout.write(style(f"[{index}/{len(ids)}] error {error_id}: {status}"))
        finally:
            bar.close()

    def selected(self, *, pending: bool, error_id: int | None) -> list[int]:
        if error_id is not None:
            if not ErrorInvestigation.objects.filter(pk=error_id).exists():
                raise CommandError(f"no error with id {error_id}")
            return [error_id]
        if not pending:
            raise CommandError("say which: --pending or --id N")
        statuses = [ErrorInvestigation.Status.PENDING, ErrorInvestigation.Status.FAILED]
        return list(ErrorInvestigation.objects.filter(status__in=statuses).order_by("pk").values_list("pk", flat=True))
