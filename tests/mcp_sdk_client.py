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
from mcp.types import PromptReference, ResourceTemplateReference

# Server notifications the client saw outside any request (resources/updated, list_changed).
NOTIFICATIONS: list[str] = []


async def on_message(message: Any) -> None:
    method = getattr(getattr(message, "root", message), "method", None)
    if isinstance(method, str):
        NOTIFICATIONS.append(method)


async def citizen(client: Client, report: dict[str, Any], thread: str | None, resources: bool) -> None:
    """Prompts, completion, logging and (where the server offers them) resources."""
    prompts = await client.list_prompts()
    report["prompts"] = sorted(prompt.name for prompt in prompts.prompts)
    got = await client.get_prompt("codereview", {"task": "the cache layer", "files": "/src/cache.py"})
    report["codereview_prompt"] = got.messages[0].content.text
    models = await client.complete(PromptReference(type="ref/prompt", name="chat"), {"name": "model", "value": "glm"})
    report["model_completion"] = models.completion.values
    await client.set_logging_level("warning")
    if not resources or thread is None:
        return
    uri = f"exai://threads/{thread}"
    listed = await client.list_resources()
    report["resources"] = [str(resource.uri) for resource in listed.resources]
    read = await client.read_resource(uri)
    report["thread_text"] = read.contents[0].text
    templates = await client.list_resource_templates()
    report["templates"] = [template.uri_template for template in templates.resource_templates]
    ids = await client.complete(
        ResourceTemplateReference(type="ref/resource", uri="exai://threads/{thread_id}"),
        {"name": "thread_id", "value": thread[:6]},
    )
    report["thread_completion"] = ids.completion.values
    follow_up = {"prompt": "and then?", "continuation_id": thread}
    if client.protocol_version == "2026-07-28":
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            await client.call_tool("chat", follow_up)
            async with asyncio.timeout(10):
                event = await anext(aiter(subscription))
            report["updated"] = [type(event).__name__, str(getattr(event, "uri", ""))]
    else:
        await client.subscribe_resource(uri)
        await client.call_tool("chat", follow_up)
        async with asyncio.timeout(10):
            while "notifications/resources/updated" not in NOTIFICATIONS:
                await asyncio.sleep(0.05)
        report["updated"] = ["ResourceUpdated", uri]


async def exercise(client: Client, file_id: str | None = None, resources: bool = True) -> dict[str, Any]:
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
        "continuation_id": (result.meta or {}).get("continuation_id"),
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
    await citizen(client, report, report["chat"]["continuation_id"], resources)
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
        async with Client(server, mode=args.mode, message_handler=on_message) as client:
            # The bridge lists and reads resources but holds no stream to be told of changes.
            report = await exercise(client, resources=False)
            thread = report["chat"]["continuation_id"]
            report["resources"] = [str(r.uri) for r in (await client.list_resources()).resources]
            report["thread_text"] = (await client.read_resource(f"exai://threads/{thread}")).contents[0].text
    else:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {args.token}"}, timeout=30) as http:
            transport = streamable_http_client(args.url, http_client=http)
            async with Client(transport, mode=args.mode, message_handler=on_message) as client:
                report = await exercise(client, args.file_id)
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
