"""A stdio MCP server that forwards to a running EXAI server over its WebSocket protocol.

Claude Desktop and Claude Code launch MCP servers as processes and speak JSON-RPC
over stdin/stdout, one message per line. This bridge answers the protocol itself
(handshake, discovery, ping) and forwards tools/list and tools/call. stdout carries
only protocol messages; diagnostics go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tools_app.client import ExaiClient, ExaiClientError
from tools_app.mcp_protocol import McpServer, parse_frame
from tools_app.services import McpProgress

logger = logging.getLogger("exai.mcp_stdio")
_MAX_LINE = 64 * 1024 * 1024


class RemoteToolBackend:
    """Tools of a remote EXAI server; connects on first use and once more after a lost link."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self._client: ExaiClient | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> ExaiClient:
        async with self._lock:
            if self._client is None or not self._client.connected:
                client = ExaiClient(self.url, self.token)
                await client.connect()
                self._client = client
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def list_tools(self) -> list[dict[str, Any]]:
        return await (await self.client()).list_tools()

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, request_id: str, on_progress: Any
    ) -> dict[str, Any]:
        try:
            client = await self.client()
        except ExaiClientError as exc:
            return {"error": {"code": "internal", "message": str(exc)}}
        try:
            if on_progress is None:
                return await client.call_tool(name, arguments)
            # MCP has no stream for the answer or the reasoning: they go to the client as progress.
            progress = McpProgress(on_progress)
            try:
                return await client.call_tool(
                    name,
                    arguments,
                    on_progress=progress.status,
                    on_stream=progress.answer,
                    on_reasoning=progress.reasoning.push,
                )
            finally:
                await progress.close()
        except ExaiClientError as exc:
            return {"error": {"code": "internal", "message": str(exc)}}


async def serve_stdio(url: str, token: str, reader: asyncio.StreamReader, write: Any) -> None:
    backend = RemoteToolBackend(url, token)
    server = McpServer(backend)
    write_lock = asyncio.Lock()
    tasks: set[asyncio.Task[None]] = set()

    async def send(message: dict[str, Any]) -> None:
        async with write_lock:
            write(json.dumps(message).encode() + b"\n")

    async def answer(message: Any) -> None:
        response = await server.handle(message, send)
        if response is not None:
            await send(response)

    try:
        while line := await reader.readline():
            if not line.strip():
                continue
            message, error = parse_frame(line)
            if error is not None:
                await send(error)
                continue
            task = asyncio.ensure_future(answer(message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # stdin closed: the client is gone, so are its calls.
        if tasks:
            await asyncio.wait(tasks, timeout=0.1)
    finally:
        server.cancel_all()
        for task in tasks:
            task.cancel()
        await backend.close()


class Command(BaseCommand):
    help = "Serve MCP over stdio, forwarding to an EXAI server (for Claude Desktop / Claude Code)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="ws://127.0.0.1:8079/ws", help="EXAI WebSocket URL.")
        parser.add_argument("--token", required=True, help="Access token (manage.py issue_token USER).")

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._main(options["url"], options["token"]))

    async def _main(self, url: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_MAX_LINE)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        stdout = sys.stdout.buffer

        def write(data: bytes) -> None:
            stdout.write(data)
            stdout.flush()

        await serve_stdio(url, token, reader, write)
