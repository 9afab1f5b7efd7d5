"""A stdio MCP server that forwards to a running EXAI server over its WebSocket protocol.

Claude Desktop and Claude Code launch MCP servers as processes and speak JSON-RPC
over stdin/stdout, one message per line. This bridge answers the protocol itself
(handshake, discovery, ping, prompts, logging/setLevel) and forwards tools/list and
tools/call over the WebSocket; resources and completion are forwarded to the server's
`POST /mcp` as stateless requests. stdout carries only protocol messages; diagnostics go
to stderr. Resource subscriptions are not offered: the bridge holds no stream on which
the server could announce a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import mimetypes
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.core.management.base import BaseCommand, CommandParser

from tools_app.client import ExaiClient, ExaiClientError
from tools_app.mcp_protocol import MODERN_VERSIONS, VERSION_META_KEY, McpServer, RpcError, parse_frame
from tools_app.services import McpProgress

logger = logging.getLogger("exai.mcp_stdio")
_MAX_LINE = 64 * 1024 * 1024


# Arguments that name files; on this machine they may be paths, which the bridge uploads.
_FILE_LISTS = ("files", "images", "relevant_files")
_FILE_ONE = ("file",)
_CHUNK = 1024 * 1024


class LocalFileError(Exception):
    """A path in the arguments that this machine cannot read."""


def _is_path(item: Any) -> bool:
    """Whether a file argument names a path (not a file id, a URL or a data URL)."""
    if not isinstance(item, str) or item.startswith(("data:", "http://", "https://")):
        return False
    try:
        uuid.UUID(item)
    except ValueError:
        return True
    return False


def hashed_local_file(item: str) -> tuple[Path, str]:
    """The file `item` names on this machine and its SHA-256 (read in chunks); LocalFileError if none."""
    path = Path(item).expanduser()
    if not path.is_file():
        raise LocalFileError(f"{item}: no such file on this machine (paths are read where the bridge runs).")
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise LocalFileError(f"{item}: cannot be read ({exc.strerror or exc}).") from None
    return path, digest.hexdigest()


class RemoteToolBackend:
    """Tools of a remote EXAI server; connects on first use and once more after a lost link.

    The bridge runs on the user's machine: a file argument (`files`, `images`,
    `relevant_files`, `file`) that names a path here is uploaded to the server and replaced
    by its file id. Content-addressed: the server is first asked whether the user already
    holds that SHA-256 (`POST /api/files/by-hash/`), and the bytes are sent (streamed) only
    when not. File ids, URLs and data URLs pass through unchanged.
    """

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self._client: ExaiClient | None = None
        self._lock = asyncio.Lock()
        parts = urlsplit(url)
        scheme = "https" if parts.scheme == "wss" else "http"
        self.http_url = f"{scheme}://{parts.netloc}"

    async def local_files(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """`arguments` with every local path uploaded and replaced by its file id (unchanged, with
        no trip to the server, when they name none)."""
        named = {key: value for key in _FILE_LISTS if isinstance(value := arguments.get(key), list)}
        named |= {key: [value] for key in _FILE_ONE if isinstance(value := arguments.get(key), str)}
        if not any(_is_path(item) for items in named.values() for item in items):
            return arguments
        changed = dict(arguments)
        async with httpx.AsyncClient(
            base_url=self.http_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=300
        ) as http:
            for key, items in named.items():
                ids = [await self._as_id(http, item) if _is_path(item) else item for item in items]
                changed[key] = ids if key in _FILE_LISTS else ids[0]
        return changed

    async def _as_id(self, http: httpx.AsyncClient, item: str) -> str:
        path, digest = await asyncio.to_thread(hashed_local_file, item)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        held = await http.post(
            "/api/files/by-hash/", json={"sha256": digest, "name": path.name, "content_type": content_type}
        )
        if held.status_code == 201:
            return held.json()["id"]
        if held.status_code != 404:
            raise LocalFileError(f"{item}: the server refused it ({held.status_code}: {held.text[:200]}).")
        with open(path, "rb") as handle:  # noqa: ASYNC230  # streamed by httpx in chunks, not read into memory
            sent = await http.post("/api/files/", files={"file": (path.name, handle, content_type)})
        if sent.status_code != 201:
            raise LocalFileError(f"{item}: the upload was refused ({sent.status_code}: {sent.text[:200]}).")
        return sent.json()["id"]

    # Resources and completion: the server's own MCP endpoint answers, stateless.
    watches_resources = False

    async def _forward(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": method,
            "params": {**params, "_meta": {VERSION_META_KEY: MODERN_VERSIONS[-1]}},
        }
        try:
            async with httpx.AsyncClient(
                base_url=self.http_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60
            ) as http:
                reply = (await http.post("/mcp", json=request, headers={"Accept": "application/json"})).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RpcError(-32603, f"{method} at {self.http_url}/mcp failed: {exc}") from None
        if "error" in reply:
            error = reply["error"]
            raise RpcError(error.get("code", -32603), error.get("message", "error"), error.get("data"))
        result = dict(reply.get("result") or {})
        result.pop("resultType", None)
        return result

    def watch_resources(self, on_change: Any) -> Any:
        raise NotImplementedError("the bridge does not watch resources (watches_resources is False)")

    async def list_resources(self, cursor: str | None) -> dict[str, Any]:
        return await self._forward("resources/list", {"cursor": cursor} if cursor else {})

    async def resource_templates(self) -> list[dict[str, Any]]:
        return (await self._forward("resources/templates/list", {})).get("resourceTemplates", [])

    async def read_resource(self, uri: str) -> dict[str, Any]:
        return await self._forward("resources/read", {"uri": uri})

    async def complete_resource(self, uri_template: str, variable: str, value: str) -> list[str]:
        params = {"ref": {"type": "ref/resource", "uri": uri_template}, "argument": {"name": variable, "value": value}}
        return (await self._forward("completion/complete", params))["completion"]["values"]

    async def complete_argument(self, name: str, value: str) -> list[str]:
        # Prompts are made alike on both sides; any prompt with that argument completes it the same.
        prompt = {"model": "chat", "continuation_id": "chat", "files": "chat", "file": "smart_file_query"}.get(name)
        if prompt is None:
            return []
        params = {"ref": {"type": "ref/prompt", "name": prompt}, "argument": {"name": name, "value": value}}
        return (await self._forward("completion/complete", params))["completion"]["values"]

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
        self, name: str, arguments: dict[str, Any], *, request_id: str, on_progress: Any, on_log: Any = None
    ) -> dict[str, Any]:
        try:
            arguments = await self.local_files(arguments)
        except LocalFileError as exc:
            return {"error": {"code": "invalid_arguments", "message": str(exc)}}
        except httpx.HTTPError as exc:
            return {"error": {"code": "internal", "message": f"uploading a file to {self.http_url} failed: {exc}"}}
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
