"""An error as capture holds it until it is written: one entry per distinct error, counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Pending:
    error_hash: str
    error_type: str
    message: str
    location: str
    context: dict[str, Any]
    first_at: datetime
    last_at: datetime
    count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
