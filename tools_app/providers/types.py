"""What providers and their callers exchange: models, messages and files (the error: base.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from django.conf import settings

# Where a model's thinking is steered (workflow tools' `thinking_mode`); None = the model's default.
ThinkingMode = Literal["minimal", "low", "medium", "high", "max"]


class ChatMessage(TypedDict):
    role: str
    content: str | list[dict[str, Any]]


@dataclass(frozen=True)
class ModelSpec:
    """What one model can do; the catalogue builds these from the live list and the family facts."""

    name: str
    provider: str
    context_window: int
    max_output_tokens: int
    vision: bool = False
    web_search: bool = False
    thinking: bool = False
    function_calling: bool = False
    # The only temperature the model accepts; any other is refused before a request is sent.
    fixed_temperature: float | None = None
    description: str = ""
    known: bool = True  # its family's facts apply (else conservative defaults)
    listed: bool = True  # the provider's live list names it (else the list could not be read)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "vision": self.vision,
            "web_search": self.web_search,
            "thinking": self.thinking,
            "function_calling": self.function_calling,
            "fixed_temperature": self.fixed_temperature,
            "description": self.description,
            "known_family": self.known,
            "listed": self.listed,
        }

    def output_budget(self, share: float = 1.0) -> int:
        """The `max_tokens` to send: room for reasoning and answer, never the provider's tiny default."""
        return max(512, int(min(self.max_output_tokens, settings.EXAI_MAX_OUTPUT_TOKENS) * share))


@dataclass(frozen=True)
class ProviderFile:
    """A file as the provider's files API lists it."""

    id: str
    filename: str
    bytes: int
    created_at: int
