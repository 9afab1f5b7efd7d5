"""`challenge`: make the assistant re-examine a statement critically instead of agreeing; no provider call."""

from __future__ import annotations

import json
from typing import Any

from tools_app.context_window import prompt_limit_check
from tools_app.tools.base import CallContext, Tool, ToolResult, object_schema

INSTRUCTIONS = (
    "CRITICAL REASSESSMENT - do not simply agree. Re-examine the statement above against the evidence you have: "
    "is it correct, complete and relevant? If it is wrong, say so plainly and explain; if it is right, say why, "
    "without flattery. Then continue with the better course."
)


class ChallengeTool(Tool):
    name = "challenge"
    kind = "simple"
    profile = "standard"
    description = "Re-examine a statement or pushback critically instead of reflexively agreeing. No model call."
    input_schema = object_schema(
        {"prompt": {"type": "string", "minLength": 1, "description": "The statement to scrutinise."}}, ["prompt"]
    )

    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> ToolResult:
        prompt_limit_check(arguments, "prompt")
        payload = {
            "status": "challenge_accepted",
            "original_statement": arguments["prompt"],
            "challenge_prompt": f"{arguments['prompt']}\n\n{INSTRUCTIONS}",
        }
        return ToolResult(json.dumps(payload, indent=1), {"status": "challenge_accepted"})
