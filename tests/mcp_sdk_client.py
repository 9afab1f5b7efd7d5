"""Drive an EXAI server with the official MCP Python SDK (2.x) and print what happened as JSON.

Runs in the separate client venv (`.venv-mcp`, made by `make test`), because mcp 2.x
cannot be installed beside zhipuai. Usage:

    python mcp_sdk_client.py --mode legacy|auto --url http://127.0.0.1:PORT/mcp --token T
    python mcp_sdk_client.py --mode auto --stdio PYTHON MANAGE_PY WS_URL --token T
    python mcp_sdk_client.py --url ... --token T --file-id ID    (also asks smart_file_query about a file)
"""

import argparse
import asyncio
import json
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


async def exercise(client: Client, file_id: str | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"protocol_version": client.protocol_version}
    tools = await client.list_tools()
    report["tools"] = sorted(tool.name for tool in tools.tools)
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    result = await client.call_tool(
        "chat", {"prompt": "hello from the sdk", "model": "glm-4.6"}, progress_callback=on_progress
    )
    report["chat"] = {
        "is_error": result.is_error,
        "text": result.content[0].text,
        "meta": result.meta,
        "progress": progress,
    }
    if file_id:
        answer = await client.call_tool("smart_file_query", {"file": file_id, "question": "what does it do?"})
        report["file_query"] = {"is_error": answer.is_error, "text": answer.content[0].text, "meta": answer.meta}
    # A two-step workflow: a pause without a provider call, then the expert's analysis.
    step = {"step": "look", "total_steps": 2, "findings": "a race in the cache"}
    first = await client.call_tool("debug", {**step, "step_number": 1, "next_step_required": True})
    paused = json.loads(first.content[0].text)
    final = await client.call_tool(
        "debug",
        {**step, "step_number": 2, "next_step_required": False, "continuation_id": paused["continuation_id"]},
    )
    report["workflow"] = {
        "first_status": paused["status"],
        "required_actions": paused["required_actions"],
        "final_status": json.loads(final.content[0].text.split("\n\n## Expert analysis", 1)[0])["status"],
        "final_is_error": final.is_error,
        "final_provider": (final.meta or {}).get("provider"),
    }
    bad = await client.call_tool("chat", {"prompt": 7})
    report["bad_arguments"] = {"is_error": bad.is_error, "text": bad.content[0].text}
    try:
        await client.call_tool("no_such_tool", {})
        report["unknown_tool"] = {"raised": False}
    except Exception as exc:  # the SDK raises the JSON-RPC error
        report["unknown_tool"] = {
            "raised": True,
            "error": str(exc),
            "code": getattr(getattr(exc, "error", None), "code", None),
        }
    return report


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--url")
    parser.add_argument("--stdio", nargs=3, metavar=("PYTHON", "MANAGE_PY", "WS_URL"))
    parser.add_argument("--token", required=True)
    parser.add_argument("--file-id")
    args = parser.parse_args()
    if args.stdio:
        python, manage, ws_url = args.stdio
        server: Any = StdioServerParameters(
            command=python, args=[manage, "mcp_stdio", "--url", ws_url, "--token", args.token]
        )
        async with Client(server, mode=args.mode) as client:
            report = await exercise(client)
    else:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {args.token}"}, timeout=30) as http:
            transport = streamable_http_client(args.url, http_client=http)
            async with Client(transport, mode=args.mode) as client:
                report = await exercise(client, args.file_id)
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
