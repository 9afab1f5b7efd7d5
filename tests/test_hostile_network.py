"""A hostile network against a real daphne: endless chunked bodies, sockets that never log in, floods of sockets."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerProcess, access_token, server_env
from tests.provider_stub import ProviderStub

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD_LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def hardened(
    django_db_setup: None,
    django_db_blocker: Any,
    provider_stub: ProviderStub,
    file_root: Path,
    tmp_path_factory: Any,
) -> Iterator[ServerProcess]:
    """A server with small limits, so that going over them is quick."""
    env = server_env(
        django_db_blocker,
        provider_stub,
        file_root,
        EXAI_MAX_UPLOAD_MB="1",
        EXAI_HELLO_TIMEOUT_S="1",
        EXAI_WS_MAX_PER_ADDRESS="6",
        EXAI_WS_MAX_PER_USER="3",
    )
    process = ServerProcess(env, log=tmp_path_factory.mktemp("hardened") / "access.log").start()
    yield process
    process.stop()


def deleted_files_held(process: ServerProcess) -> int:
    """Descriptors the server holds on files already unlinked (spooled request bodies)."""
    assert process.process is not None
    fd_dir = Path(f"/proc/{process.process.pid}/fd")
    held = 0
    for entry in fd_dir.iterdir():
        try:
            held += os.readlink(entry).endswith("(deleted)")
        except OSError:
            continue
    return held


def test_an_endless_chunked_body_is_refused_with_413_as_it_arrives(hardened: ServerProcess) -> None:
    before = deleted_files_held(hardened)
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", hardened.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/files/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        chunk = b"x" * 65536
        try:
            while sent < 50 * UPLOAD_LIMIT:  # far past the limit: the server must stop it
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:
            pass  # hung up on: what it said is still in our receive buffer
        sock.settimeout(5)
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "too_large"
    assert sent < 20 * UPLOAD_LIMIT  # stopped near the limit, not after reading it all
    # What was spooled is let go at once, not when a garbage collection gets round to it.
    deadline = time.monotonic() + 3
    while deleted_files_held(hardened) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deleted_files_held(hardened) <= before


def test_a_chunked_body_within_the_limit_is_answered_by_the_application(hardened: ServerProcess, user: Any) -> None:
    # Django reads no body without a Content-Length: the upload view says what it wants instead.
    token = access_token(user)
    boundary = "exaiboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nchunked but small\r\n--{boundary}--\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", hardened.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/files/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert (
        "multipart/form-data field `file`" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["details"]["file"][0]
    )


async def closed_with(ws: Any, timeout: float = 5.0) -> tuple[int | None, str]:
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None, closed.value.rcvd.reason if closed.value.rcvd else ""


@pytest.mark.parametrize("path", ["/ws", "/mcp"])
async def test_a_socket_that_never_authenticates_is_closed_after_the_hello_timeout(
    hardened: ServerProcess, path: str
) -> None:
    async with websockets.connect(f"{hardened.ws_url}{path}") as ws:
        started = time.monotonic()
        code, reason = await closed_with(ws)
    assert code == 4401 and "not authenticated within 1s" in reason
    assert time.monotonic() - started < 4


async def test_an_authenticated_socket_outlives_the_hello_timeout(hardened: ServerProcess, user: Any) -> None:
    async with websockets.connect(f"{hardened.ws_url}/ws") as ws:
        await ws.send(json.dumps({"op": "hello", "token": access_token(user)}))
        assert json.loads(await ws.recv())["ok"] is True
        await asyncio.sleep(1.5)
        await ws.send(json.dumps({"op": "ping"}))
        assert json.loads(await ws.recv()) == {"op": "pong"}


async def test_a_large_frame_before_authentication_is_refused_as_it_arrives(hardened: ServerProcess, user: Any) -> None:
    async with websockets.connect(f"{hardened.ws_url}/ws", max_size=None) as ws:
        await ws.send("x" * (1024 * 1024))
        code, _ = await closed_with(ws)
    assert code == 1009
    # After hello the same frame is the consumer's to judge: a clear error, and the socket stays.
    async with websockets.connect(f"{hardened.ws_url}/ws", max_size=None) as ws:
        await ws.send(json.dumps({"op": "hello", "token": access_token(user)}))
        assert json.loads(await ws.recv())["ok"] is True
        await ws.send(json.dumps({"op": "ping", "padding": "x" * (1024 * 1024)}))
        assert json.loads(await ws.recv()) == {"op": "pong"}


async def test_sockets_over_the_per_address_cap_are_closed_with_4429(hardened: ServerProcess) -> None:
    held = [await websockets.connect(f"{hardened.ws_url}/ws") for _ in range(6)]
    try:
        async with websockets.connect(f"{hardened.ws_url}/ws") as extra:
            code, reason = await closed_with(extra)
        assert code == 4429 and "your address" in reason
        # Health checks and REST still answer while the sockets are held.
        reader, writer = await asyncio.open_connection("127.0.0.1", hardened.port)
        writer.write(b"GET /health/live/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        for ws in held:
            await ws.close()
    # Closed sockets give their places back.
    await asyncio.sleep(0.3)
    async with websockets.connect(f"{hardened.ws_url}/ws") as again:
        await again.send(json.dumps({"op": "ping"}))
        assert json.loads(await again.recv())["op"] == "error"  # answered (unauthorized), not refused


async def test_sockets_over_the_per_user_cap_are_refused_at_hello_and_at_connect(
    hardened: ServerProcess, user: Any
) -> None:
    token = access_token(user)
    headers = {"Authorization": f"Bearer {token}"}
    held = [await websockets.connect(f"{hardened.ws_url}/mcp", subprotocols=["mcp"], additional_headers=headers)]
    for _ in range(2):
        ws = await websockets.connect(f"{hardened.ws_url}/ws")
        await ws.send(json.dumps({"op": "hello", "token": token}))
        assert json.loads(await ws.recv())["ok"] is True
        held.append(ws)
    try:
        async with websockets.connect(f"{hardened.ws_url}/ws") as extra:
            await extra.send(json.dumps({"op": "hello", "token": token}))
            ack = json.loads(await extra.recv())
            assert ack["ok"] is False and "your user" in ack["error"]["message"]
            assert (await closed_with(extra))[0] == 4429
        async with websockets.connect(
            f"{hardened.ws_url}/mcp", subprotocols=["mcp"], additional_headers=headers
        ) as extra:
            code, reason = await closed_with(extra)
        assert code == 4429 and "your user" in reason
    finally:
        for ws in held:
            await ws.close()


async def test_a_token_in_the_url_of_post_mcp_is_refused_and_no_token_reaches_the_access_log(
    hardened: ServerProcess, user: Any
) -> None:
    token = access_token(user)
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"MCP-Protocol-Version": "2025-06-18"}
    async with httpx.AsyncClient(base_url=hardened.http_url) as client:
        refused = await client.post(f"/mcp?token={token}", json=body, headers=headers)
        assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["error"]["message"]
        served = await client.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token}"})
        assert served.status_code == 200
    # Sockets may still carry one (browsers cannot set headers on a WebSocket); the log hides it.
    async with websockets.connect(f"{hardened.ws_url}/ws?token={token}") as ws:
        await ws.send(json.dumps({"op": "ping"}))
        assert json.loads(await ws.recv()) == {"op": "pong"}
    assert hardened.log is not None
    await asyncio.sleep(0.3)
    log = hardened.log.read_text()
    assert '"POST /mcp?<redacted>" 401' in log and token not in log and token.split(".")[2] not in log


def multipart(parts: int, size: int) -> tuple[bytes, str]:
    boundary = "exaiboundary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="part{i}.bin"\r\n'.encode()
        + b"Content-Type: application/octet-stream\r\n\r\n"
        + os.urandom(size)
        + b"\r\n"
        for i in range(parts)
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def test_a_multipart_upload_of_many_parts_is_a_400_that_leaves_no_temporary_file(
    hardened: ServerProcess, user: Any, file_root: Path
) -> None:
    incoming = file_root / ".incoming"
    before = set(incoming.iterdir()) if incoming.exists() else set()
    body, content_type = multipart(150, 4096)
    async with httpx.AsyncClient(base_url=hardened.http_url) as client:
        response = await client.post(
            "/api/files/",
            content=body,
            headers={"Content-Type": content_type, "Authorization": f"Bearer {access_token(user)}"},
        )
    assert response.status_code == 400
    assert "exactly one file" in json.dumps(response.json()["error"])
    assert (set(incoming.iterdir()) if incoming.exists() else set()) == before


async def test_json_bodies_up_to_the_frame_limit_are_served_and_larger_ones_are_a_json_413(
    server: ServerProcess, user: Any
) -> None:
    auth = {"Authorization": f"Bearer {access_token(user)}"}
    mcp = {**auth, "MCP-Protocol-Version": "2025-06-18"}
    padding = "x" * (3 * 1024 * 1024)  # over Django's default 2.5 MiB, under the 16 MiB frame limit
    huge = "x" * (17 * 1024 * 1024)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"padding": padding}}
        assert (await client.post("/mcp", json=ping, headers=mcp)).json()["result"] == {}
        too_big = await client.post("/mcp", json={**ping, "params": {"padding": huge}}, headers=mcp)
        assert too_big.status_code == 413 and "error" in too_big.json()

        call = {"arguments": {"prompt": padding}}
        answer = await client.post("/api/tools/chat/call/", json=call, headers=auth)
        assert answer.json()["error"]["code"] == "invalid_arguments"  # the prompt limit speaks, as JSON
        refused = await client.post("/api/tools/chat/call/", json={"arguments": {"prompt": huge}}, headers=auth)
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"
