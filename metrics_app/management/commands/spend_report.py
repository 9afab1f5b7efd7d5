"""What the calls of the last days cost, as Markdown: totals, then per user, model, tool and day."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from metrics_app.spend import spend_summary
from tools_app.pricing import price_of

HEADER = "| {key} | calls | input tokens (cached) | output tokens (reasoning) | cost, USD |"
RULE = "| --- | ---: | ---: | ---: | ---: |"


def _row(name: str, row: dict[str, Any]) -> str:
    cost = f"{row['cost_usd']:,.4f}"
    if row["unpriced_calls"]:
        cost += f" (+ {row['unpriced_calls']:,} call(s) with no price)"
    return (
        f"| {name} | {row['calls']:,} | {row['tokens_in']:,} ({row['cached_tokens']:,}) "
        f"| {row['tokens_out']:,} ({row['reasoning_tokens']:,}) | {cost} |"
    )


class Command(BaseCommand):
    help = "Print (or write) a Markdown report of what calls cost over the last --days, per user, model, tool and day."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30, help="How many days back, today included (UTC).")
        parser.add_argument("--user", help="Only this user's calls (a username).")
        parser.add_argument("--out", type=Path, help="Write the report here (default: var/reports/spend.md).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["days"] <= 366:
            raise CommandError("--days must be between 1 and 366")
        user_id = None
        users = {user.pk: user.get_username() for user in get_user_model().objects.all()}
        if options["user"]:
            found = [pk for pk, name in users.items() if name == options["user"]]
            if not found:
                raise CommandError(f"no user {options['user']!r}")
            user_id = found[0]
        summary = lambda group: spend_summary(days=options["days"], group=group, user_id=user_id)  # noqa: E731
        total = summary([])
        scope = f"user {options['user']}" if options["user"] else "all users"
        lines = [
            f"# Spend, {total['since']} to {total['until']} (UTC), {scope}",
            "",
            f"**{total['cost_usd']:,.4f} USD** over {total['calls']:,} calls that reached a provider"
            + (
                f", {total['unpriced_calls']:,} of them with a model that has no price (their tokens are"
                " counted, not their cost)."
                if total["unpriced_calls"]
                else "."
            ),
            "",
        ]
        sections = [("user", "User"), ("model", "Model"), ("tool", "Tool"), ("day", "Day")]
        if user_id is not None:
            sections = sections[1:]
        for group, title in sections:
            lines += [f"## Per {group}", "", HEADER.format(key=title.lower()), RULE]
            for row in sorted(summary([group])["groups"], key=lambda r: (-r["cost_usd"], str(r[group]))):
                name = users.get(row[group], "(the server's own work)") if group == "user" else str(row[group])
                lines.append(_row(name or "(none)", row))
            lines.append("")
        lines += [
            "## Prices used",
            "",
            "| model | input | cached input | output | read |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for row in summary(["model"])["groups"]:
            price = price_of(row["model"])
            if price is None:
                lines.append(f"| {row['model'] or '(none)'} | no price | | | set one in EXAI_PRICES_FILE |")
            else:
                lines.append(
                    f"| {row['model']} | {price.input:g} | {price.cached_input:g} | {price.output:g} | {price.read} |"
                )
        lines += ["", "US dollars per million tokens; cached input is what the provider had cached (a hit)."]
        report = "\n".join(lines) + "\n"
        out = options["out"] or Path(settings.BASE_DIR) / "var" / "reports" / "spend.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
        self.stdout.write(report)
        self.stderr.write(f"written to {out}")
