"""Helpers for driving consumers with WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from channels.testing import WebsocketCommunicator

from exai_site.asgi import application

# The MCP handshake's first request, as a test client sends it.
MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def communicator(
    path: str = "/ws", *, token: str | None = None, header: bool = False, **kwargs: Any
) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token and header else []
    if token and not header:
        path = f"{path}?token={token}"
    return WebsocketCommunicator(application, path, headers=headers, **kwargs)


async def connected(token: str | None = None, **kwargs: Any) -> WebsocketCommunicator:
    comm = communicator(token=token, **kwargs)
    ok, _ = await comm.connect()
    assert ok
    return comm


async def frames_until(comm: WebsocketCommunicator, op: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Receive frames until one with `op` arrives; return all of them, that one last."""
    frames: list[dict[str, Any]] = []
    while True:
        frame = await comm.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame.get("op") == op:
            return frames


async def call(comm: WebsocketCommunicator, name: str, arguments: Any, request_id: str = "r1") -> list[dict[str, Any]]:
    await comm.send_json_to({"op": "call_tool", "request_id": request_id, "name": name, "arguments": arguments})
    return await frames_until(comm, "call_tool_res")


async def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def run(user: Any, name: str, arguments: Any, **callbacks: Any) -> dict[str, Any]:
    """One tool call through the shared call path, as every transport makes it."""
    from tools_app.services import tool_call

    return dict(await tool_call(user=user, name=name, arguments=arguments, request_id=uuid.uuid4().hex, **callbacks))


def metadata(outcome: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a successful call (failing the test, with the error, otherwise)."""
    assert "error" not in outcome, outcome
    return outcome["outputs"][0]["metadata"]


async def captured_errors(containing: str = "", timeout: float = 3.0) -> list[Any]:
    """The captured errors (ErrorInvestigation rows) whose message contains `containing`, once
    there is one: written now if pending, or by the background flush, which may be under way."""
    from channels.db import database_sync_to_async

    from errors_app.capture import flush_errors
    from errors_app.models import ErrorInvestigation

    async with asyncio.timeout(timeout):
        while True:
            await database_sync_to_async(flush_errors)()
            found = [error async for error in ErrorInvestigation.objects.filter(error_message__contains=containing)]
            if found:
                return found
            await asyncio.sleep(0.05)
