"""The API docs name every tool: one `POST /api/tools/<name>/call/` operation per tool, with the
tool's own argument schema, beside the generic `{name}` operation (drf-spectacular hook)."""

from __future__ import annotations

import copy
from typing import Any

GENERIC = "/api/tools/{name}/call/"


def add_tool_operations(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    from tools_app.tools import enabled_tools

    paths = result.get("paths", {})
    generic = paths.get(GENERIC, {}).get("post")
    if generic is None:
        return result
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, tool in sorted(enabled_tools().items()):
        component = f"ToolArguments_{name}"
        schemas[component] = {**copy.deepcopy(tool.input_schema), "title": f"{name} arguments"}
        operation = copy.deepcopy(generic)
        operation.pop("parameters", None)
        description = " ".join(tool.description.split())
        operation |= {
            "operationId": f"tools_{name}_call",
            "summary": f"Call {name}: {description.split('. ', 1)[0].rstrip('.')}"[:120],
            "description": description,
            "tags": ["tools"],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["arguments"],
                            "properties": {
                                "arguments": {"$ref": f"#/components/schemas/{component}"},
                                "request_id": {
                                    "type": "string",
                                    "description": "Optional; echoed in latency samples and logs.",
                                },
                            },
                        }
                    }
                },
            },
        }
        paths[f"/api/tools/{name}/call/"] = {"post": operation}
    return result
