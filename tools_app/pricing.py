"""What a model's tokens cost: a price table, dated, and each call's cost from it.

Prices are US dollars per million tokens: input the provider had not cached (a cache miss),
input it had (a hit: Moonshot and Z.ai cache a repeated prompt prefix and report it as
`cached_tokens`), and output (reasoning included: it is billed as output). Each default
names the day it was read and where; a JSON file named by EXAI_PRICES_FILE adds models or
replaces defaults:

    {"kimi-k2.6": {"input": 0.95, "cached_input": 0.16, "output": 4.0, "read": "2026-05-20"}}

A model with no price has none: its calls show their tokens and `cost_usd: null` ("no
price"), never a made-up cost.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

PER = 1_000_000


@dataclass(frozen=True)
class Price:
    input: float  # per million input tokens the provider had not cached
    cached_input: float  # per million input tokens it had
    output: float  # per million output tokens, reasoning included
    read: str  # the day the price was read (YYYY-MM-DD)
    source: str = ""

    def cost(self, *, tokens_in: int, cached_tokens: int, tokens_out: int) -> float:
        cached = min(max(cached_tokens, 0), tokens_in)
        return ((tokens_in - cached) * self.input + cached * self.cached_input + tokens_out * self.output) / PER

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "cached_input": self.cached_input,
            "output": self.output,
            "read": self.read,
            "source": self.source,
        }


# The providers' published rate cards, as read on the day given.
DEFAULT_PRICES: dict[str, Price] = {
    "kimi-k2.6": Price(0.95, 0.16, 4.00, "2026-05-20", "Moonshot's published prices (May 2026)"),
    "glm-4.6": Price(0.60, 0.11, 2.20, "2026-03-27", "Z.ai's rate card (input, cache read, output)"),
}


@cache
def price_table() -> dict[str, Price]:
    """The defaults, with EXAI_PRICES_FILE's entries added or replacing them."""
    table = dict(DEFAULT_PRICES)
    path = settings.EXAI_PRICES_FILE
    if not path:
        return table
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    for model, entry in entries.items():
        table[model] = Price(
            input=float(entry["input"]),
            cached_input=float(entry.get("cached_input", entry["input"])),
            output=float(entry["output"]),
            read=str(entry.get("read", "")),
            source=str(entry.get("source", path)),
        )
    return table


@receiver(setting_changed)
def _forget_prices(*, setting: str, **kwargs: Any) -> None:
    if setting == "EXAI_PRICES_FILE":
        price_table.cache_clear()


def price_of(model: str | None) -> Price | None:
    return price_table().get(model or "")


def call_cost(model: str | None, *, tokens_in: int, cached_tokens: int, tokens_out: int) -> float | None:
    """What one provider reply cost, or None when its model has no price."""
    price = price_of(model)
    if price is None:
        return None
    return price.cost(tokens_in=tokens_in, cached_tokens=cached_tokens, tokens_out=tokens_out)
