"""The base class of every tool, its result, and the schema fragments tools share."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings

from tools_app.calls import CallContext, TextCallback
from tools_app.errors import ToolError
from tools_app.providers import ProviderError, ResolvedModel, UnknownModel, resolve_model

__all__ = ["CallContext", "TextCallback", "Tool", "ToolResult", "resolve_tool_model"]


@dataclass
class ToolResult:
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Tool(abc.ABC):
    """One tool: a name, a compact description, a JSON Schema for its arguments, and `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    input_schema: ClassVar[dict[str, Any]]
    # Which deadline applies (EXAI_SIMPLE_/WORKFLOW_/EXPERT_TIMEOUT_S): `simple` tools make no
    # provider call, `workflow` tools only on their final step, `expert` tools on every call.
    kind: ClassVar[str] = "expert"
    # The smallest profile (lean < standard < full) whose tools/list includes this tool.
    profile: ClassVar[str] = "standard"

    # Identical calls at temperature 0 may be answered from the response cache (`use_cache`).
    cacheable: ClassVar[bool] = False

    @abc.abstractmethod
    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult: ...

    def deadline_s(self, arguments: dict[str, Any]) -> float:
        """This call's hard deadline, by the kind of work it does."""
        if self.kind == "simple":
            return settings.EXAI_SIMPLE_TIMEOUT_S
        if self.kind == "workflow":
            return settings.EXAI_WORKFLOW_TIMEOUT_S
        return settings.EXAI_TOOL_TIMEOUT_S

    def descriptor(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema}


async def resolve_tool_model(name: str | None, *, vision: bool = False, files: bool = False) -> ResolvedModel:
    """The model a tool call names (or `auto`, choosing by `vision` and `files`), as a ToolError
    the caller can act on when it cannot be had."""
    try:
        return await resolve_model(name, vision=vision, files=files)
    except UnknownModel as exc:
        raise ToolError("invalid_arguments", f"unknown model {exc.name!r}: {exc.advice}") from None
    except ProviderError as exc:
        raise ToolError(exc.code, exc.message) from None


# Schema fragments the chat-like tools share: each is defined, and described, once.
MODEL_PROPERTY: dict[str, Any] = {
    "type": "string",
    "description": "Model name or alias: auto, kimi, glm (listmodels shows what the providers serve now).",
}
TEMPERATURE_PROPERTY: dict[str, Any] = {
    "type": "number",
    "minimum": 0,
    "maximum": 1,
    "description": "Sampling temperature; thinking models that pin it (Kimi K2.5+) refuse any other.",
}
THINKING_MODES = ["minimal", "low", "medium", "high", "max"]
THINKING_MODE_PROPERTY: dict[str, Any] = {
    "type": "string",
    "enum": THINKING_MODES,
    "description": "How hard a thinking model reasons: minimal switches reasoning off, max is its full default.",
}
CONTINUATION_PROPERTY: dict[str, Any] = {"type": "string", "description": "Thread id from an earlier reply."}
USE_CACHE_PROPERTY: dict[str, Any] = {"type": "boolean", "description": "false: never answer from the cache."}


def object_schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }
