"""MCP prompts: one per advertised tool, so a client shows `/exai:codereview` as a slash command.

A prompt is made from the tool's descriptor alone (name, description, input schema), so the
server and the stdio bridge (which only knows the remote tool list) offer the same ones. MCP
prompt arguments are strings a person types:

- a step-by-step workflow tool (its schema has `step_number` and `next_step_required`) takes
  `task` (what to look at, required) and `files` (paths, optional); the prompt tells the
  assistant how to step through the tool and when to let the expert model finish;
- any other tool takes its own required arguments and, where it has them, `model`, `files`
  and `continuation_id`; array arguments are typed as a comma-separated list.

`prompts/get` returns one user message that asks the assistant to call the tool with those
arguments (as JSON), and what to do with the reply.
"""

from __future__ import annotations

import json
from typing import Any

_OPTIONAL_ARGUMENTS = ("model", "files", "continuation_id")
_STRING_TYPES = ("string", "number", "integer", "boolean")


class PromptError(ValueError):
    """A prompt that does not exist, or arguments that do not fit it (JSON-RPC invalid params)."""


def is_workflow(descriptor: dict[str, Any]) -> bool:
    properties = descriptor.get("inputSchema", {}).get("properties", {})
    return "step_number" in properties and "next_step_required" in properties


def _summary(description: str) -> str:
    first = description.strip().split("\n", 1)[0]
    return first if len(first) <= 200 else first[:197].rstrip() + "…"


def _argument(name: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    description = schema.get("description") or name.replace("_", " ")
    if schema.get("type") == "array":
        description += " (comma-separated)"
    elif "enum" in schema:
        description += f" (one of: {', '.join(str(value) for value in schema['enum'])})"
    return {"name": name, "description": description, "required": required}


def prompt_arguments(descriptor: dict[str, Any]) -> list[dict[str, Any]]:
    if is_workflow(descriptor):
        arguments = [
            {"name": "task", "description": "What to look at: the code, the bug, the question.", "required": True}
        ]
        if "relevant_files" in descriptor["inputSchema"]["properties"]:
            arguments.append(
                {
                    "name": "files",
                    "description": "Files or folders to start from (comma-separated).",
                    "required": False,
                }
            )
        return arguments
    schema = descriptor.get("inputSchema", {})
    properties: dict[str, Any] = schema.get("properties", {})
    required = [name for name in schema.get("required", []) if name in properties]
    optional = [name for name in _OPTIONAL_ARGUMENTS if name in properties and name not in required]
    return [
        _argument(name, properties[name], name in required)
        for name in [*required, *optional]
        if properties[name].get("type") in (*_STRING_TYPES, "array") or "enum" in properties[name]
    ]


def prompt_descriptors(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """prompts/list: one prompt per tool, in the tool list's order."""
    return [
        {
            "name": tool["name"],
            "title": f"EXAI {tool['name']}",
            "description": _summary(tool.get("description", "")),
            "arguments": prompt_arguments(tool),
        }
        for tool in tools
    ]


def _typed(value: str, schema: dict[str, Any]) -> Any:
    """A typed argument as the tool's schema wants it (a comma-separated list becomes a list)."""
    kind = schema.get("type")
    if kind == "array":
        return [item.strip() for item in value.split(",") if item.strip()]
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean":
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value


def get_prompt(tools: list[dict[str, Any]], name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """prompts/get: the messages that steer the assistant to call tool `name` well."""
    tool = next((tool for tool in tools if tool["name"] == name), None)
    if tool is None:
        raise PromptError(f"unknown prompt {name!r}; prompts/list shows the ones this server offers")
    expected = prompt_arguments(tool)
    known = {argument["name"] for argument in expected}
    if unknown := sorted(set(arguments) - known):
        raise PromptError(
            f"prompt {name!r} takes no argument {unknown[0]!r}; it takes: {', '.join(sorted(known)) or 'none'}"
        )
    for argument in expected:
        value = arguments.get(argument["name"])
        if argument["required"] and (not isinstance(value, str) or not value.strip()):
            raise PromptError(f"prompt {name!r} needs the argument {argument['name']!r}")
        if value is not None and not isinstance(value, str):
            raise PromptError(f"prompt arguments are strings; {argument['name']!r} is {type(value).__name__}")
    given = {key: value for key, value in arguments.items() if isinstance(value, str) and value.strip()}
    text = _workflow_text(tool, given) if is_workflow(tool) else _call_text(tool, given)
    return {
        "description": _summary(tool.get("description", "")),
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
    }


def _call_text(tool: dict[str, Any], given: dict[str, str]) -> str:
    properties = tool.get("inputSchema", {}).get("properties", {})
    call = {key: _typed(value, properties.get(key, {})) for key, value in given.items()}
    name = tool["name"]
    if not call:
        return f"Call the EXAI `{name}` tool (no arguments) and show me what it returns."
    return (
        f"Call the EXAI `{name}` tool with these arguments:\n\n```json\n{json.dumps(call, indent=2)}\n```\n\n"
        f"({_summary(tool.get('description', ''))}) Show me its answer. If the reply's metadata has a "
        "`continuation_id`, keep it: pass it as `continuation_id` to continue the same thread later."
    )


def _workflow_text(tool: dict[str, Any], given: dict[str, str]) -> str:
    name = tool["name"]
    files = _typed(given["files"], {"type": "array"}) if "files" in given else []
    first_step: dict[str, Any] = {
        "step": f"Plan how to investigate: {given['task']}",
        "step_number": 1,
        "total_steps": 3,
        "next_step_required": True,
        "findings": "Nothing examined yet.",
    }
    if files and "relevant_files" in tool.get("inputSchema", {}).get("properties", {}):
        first_step["relevant_files"] = files
    if "findings" not in tool.get("inputSchema", {}).get("properties", {}):
        first_step.pop("findings")
    return (
        f"Use the EXAI `{name}` tool for this task: {given['task']}\n\n"
        f"`{name}` is a step-by-step workflow ({_summary(tool.get('description', ''))}). Work like this:\n"
        f"1. Call `{name}` with a first step, for example:\n\n```json\n{json.dumps(first_step, indent=2)}\n```\n"
        "2. Each reply lists `required_actions`: do that investigation yourself (read the code, run what "
        "helps) before the next call, and report what you found in `findings` (and `relevant_files`, "
        "`hypothesis`, `confidence` where they apply).\n"
        "3. Pass the `continuation_id` from the first reply in every later step, number the steps in order, "
        "and adjust `total_steps` as you learn more.\n"
        "4. On the last step set `next_step_required` to false: the expert model (Kimi or GLM) then "
        "analyses everything you found. Show me its analysis and what you conclude from it."
    )
