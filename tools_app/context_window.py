"""What fits: prompt limits, token estimates, and trimming a thread to the model's context window.

No tokenizer for these models can be had offline (tiktoken downloads its tables), so
tokens are estimated, documented and on the safe side: a token per 4 ASCII characters
and one per other character (CJK text runs about one token a character).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from tools_app.errors import ToolError
from tools_app.providers.types import ChatMessage, ModelSpec

# Room kept for the model's answer: its output limit, but never more than this share of the window.
ANSWER_SHARE = 0.25


def estimate_tokens(text: str) -> int:
    ascii_chars = len(text.encode("ascii", "ignore"))
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


def message_tokens(message: ChatMessage) -> int:
    content = message["content"]
    if isinstance(content, str):
        return estimate_tokens(content) + 4
    # Multi-part content: its text parts; an image costs roughly a thousand tokens.
    return 4 + sum(estimate_tokens(part.get("text", "")) if part.get("type") == "text" else 1000 for part in content)


FILE_ADVICE = "send the text as a file (upload it, then pass its id in files / relevant_files) instead."


def prompt_limit_check(arguments: dict[str, Any], *fields: str) -> None:
    """Refuse text over EXAI_MAX_PROMPT_CHARS, saying to send it as a file instead."""
    size = sum(len(arguments[name]) for name in fields if isinstance(arguments.get(name), str))
    if size > settings.EXAI_MAX_PROMPT_CHARS:
        named = " + ".join(f"`{name}`" for name in fields if arguments.get(name))
        raise ToolError(
            "invalid_arguments",
            f"{named} come to {size:,} characters, over the limit of {settings.EXAI_MAX_PROMPT_CHARS:,}; {FILE_ADVICE}",
        )


def fit_history(
    spec: ModelSpec, fixed: list[ChatMessage], history: list[ChatMessage], request: str
) -> list[ChatMessage]:
    """The newest turns of `history` that fit beside the fixed messages, the request and the answer.

    System prompt, files and the new request always go (files too big fail earlier, with a
    clear message); the thread gives way from its oldest turn.
    """
    budget = spec.context_window - min(spec.max_output_tokens, int(spec.context_window * ANSWER_SHARE))
    budget -= sum(message_tokens(m) for m in fixed) + estimate_tokens(request) + 4
    kept: list[ChatMessage] = []
    for message in reversed(history):
        cost = message_tokens(message)
        if cost > budget:
            break
        budget -= cost
        kept.append(message)
    kept.reverse()
    # A thread never starts with an answer whose question was dropped.
    while kept and kept[0]["role"] == "assistant":
        kept.pop(0)
    return kept
