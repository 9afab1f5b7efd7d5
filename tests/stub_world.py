"""What the provider stub knows of the providers as they are (late 2026): their live model
lists and the requests they refuse, with the status and body each really answers.

Facts from ../shared/PROVIDERS.md and the providers' public documentation:
- Moonshot lists its live models at `GET /v1/models`; a retired or unknown id is a 404
  `resource_not_found_error`. The K2.5+ family thinks by default: it streams
  `reasoning_content` before `content`, refuses any temperature but 1, takes `thinking`
  *or* `reasoning_effort` (both: 400), refuses `tool_choice: "required"` while thinking, and
  wants the `reasoning_content` of earlier assistant tool-call messages echoed back.
  Without `max_tokens` its output budget is small, and reasoning spends it first.
- Z.ai lists its models at `GET /api/paas/v4/models`; an unknown model is HTTP 400 with
  code 1214, a model the key may not use is 400 with code 1220. GLM-4.5 onwards are
  hybrid reasoning models (`thinking: {"type": "enabled"|"disabled"}`, enabled by default).
"""

from __future__ import annotations

import re
from typing import Any

KIMI_TODAY = [
    "kimi-k2.6",
    "kimi-k2.5",
    "kimi-k2.7-code",
    "kimi-k2.7-code-highspeed",
    "moonshot-v1-8k",
    "moonshot-v1-32k",
    "moonshot-v1-128k",
    "moonshot-v1-8k-vision-preview",
    "moonshot-v1-32k-vision-preview",
    "moonshot-v1-128k-vision-preview",
    "moonshot-v1-auto",
]
KIMI_THINKING = {"kimi-k2.5", "kimi-k2.6", "kimi-k2.7-code", "kimi-k2.7-code-highspeed"}
# Discontinued by Moonshot in 2026: answered 404 like any unknown id.
KIMI_RETIRED = [
    "kimi-k2-0711-preview",
    "kimi-k2-0905-preview",
    "kimi-k2-turbo-preview",
    "kimi-k2-thinking",
    "kimi-k2-thinking-turbo",
    "kimi-latest",
]
GLM_TODAY = [
    "glm-4.5",
    "glm-4.5-air",
    "glm-4.6",
    "glm-4.7",
    "glm-5",
    "glm-5-turbo",
    "glm-5.1",
    "glm-5.2",
    "glm-5v-turbo",
]
# Exists, but not for this key's plan.
GLM_GATED = ["glm-5.3"]
# What Moonshot's small default output budget is when a request names no max_tokens.
KIMI_DEFAULT_MAX_TOKENS = 1024


def model_list(ids: list[str], owner: str) -> dict[str, Any]:
    """A `GET /models` answer, OpenAI-shaped as both providers send it."""
    return {
        "object": "list",
        "data": [{"id": ident, "object": "model", "created": 1_760_000_000, "owned_by": owner} for ident in ids],
    }


def error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "type": kind}
    if code is not None:
        body["code"] = code
    return {"error": body}


def thinking_active(provider: str, payload: dict[str, Any]) -> bool:
    """Whether this request makes the model reason before answering."""
    model = payload.get("model", "")
    disabled = (payload.get("thinking") or {}).get("type") == "disabled"
    if provider == "kimi":
        return model in KIMI_THINKING and not disabled
    return model.startswith(("glm-4.5", "glm-4.6", "glm-4.7", "glm-5")) and not disabled


_TOOL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$")


# Tool types each API takes besides `function`: Moonshot's built-ins ($web_search), Z.ai's
# web search and retrieval.
_OTHER_TOOL_TYPES = {"kimi": ("builtin_function",), "glm": ("web_search", "retrieval")}


def _tools_refusal(provider: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """Both APIs check function definitions as the OpenAI API does: a malformed one is a 400."""
    tools = payload.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return 400, error("Invalid type for 'tools': expected an array", "invalid_request_error")
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in _OTHER_TOOL_TYPES.get(provider, ()):
            continue
        if kind != "function":
            return 400, error(f"Invalid 'tools[{index}].type': expected 'function'", "invalid_request_error")
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            return 400, error(
                f"Invalid 'tools[{index}].function.name': string does not match pattern", "invalid_request_error"
            )
    return None


def refusal(provider: str, payload: dict[str, Any], listed: list[str]) -> tuple[int, dict[str, Any]] | None:
    """The (status, body) a real provider answers this request with, or None when it serves it."""
    model = payload.get("model", "")
    if (refused := _tools_refusal(provider, payload)) is not None and model in listed:
        return refused
    if provider == "kimi":
        return _kimi_refusal(model, payload, listed)
    if model in GLM_GATED:
        return 400, error(f"You do not have permission to access {model}", "invalid_request_error", "1220")
    if model not in listed:
        return 400, error(f"modelCode {model} does not exist", "invalid_request_error", "1214")
    return None


def _kimi_refusal(model: str, payload: dict[str, Any], listed: list[str]) -> tuple[int, dict[str, Any]] | None:
    if model not in listed:
        return 404, error(f"Not found the model {model} or Permission denied", "resource_not_found_error")
    bad = "invalid_request_error"
    if "thinking" in payload and "reasoning_effort" in payload:
        return 400, error("cannot specify both 'thinking' and 'reasoning_effort'", bad)
    if model in KIMI_THINKING:
        # The K2.5+ family pins its sampling whether or not it thinks.
        temperature = payload.get("temperature")
        if temperature is not None and temperature != 1:
            return 400, error("invalid temperature: only 1 is allowed for this model", bad)
    if not thinking_active("kimi", payload):
        return None
    if payload.get("tool_choice") == "required":
        return 400, error("tool_choice 'required' is incompatible with thinking enabled", bad)
    for index, message in enumerate(payload.get("messages") or []):
        if message.get("role") == "assistant" and message.get("tool_calls") and not message.get("reasoning_content"):
            return 400, error(f"reasoning_content is missing in assistant tool call message at index {index}", bad)
    return None


def reasoning_for(prompt: str, words: int) -> str:
    """What a thinking model reasons before it answers: `words` words about the prompt."""
    head = f"Let me think about {prompt[:60]!r} step by step."
    filler = " ".join(f"thought{n}" for n in range(max(0, words - len(head.split()))))
    return f"{head} {filler}".strip()
