"""Resumable MCP streams on real server processes: a client that loses a tools/call stream picks
it up with `GET /mcp` and `Last-Event-ID` — at the same process, or with Redis at another — and
the call went on meanwhile; a stream nobody comes back to is cancelled after the grace."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, access_token, server_env
from tests.helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ACCEPT = "application/json, text/event-stream"


@pytest.fixture
def resumable(django_db_blocker: Any, provider_stub: Any, file_root: Path, stub: Any) -> Iterator[ServerProcess]:
    env = server_env(django_db_blocker, provider_stub, file_root, EXAI_MCP_RESUME_GRACE_S="1.5", EXAI_HEARTBEAT_S="0.3")
    process = ServerProcess(env).start()
    yield process
    process.stop()


def call(prompt: str, request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "chat", "arguments": {"prompt": prompt}, "_meta": {"progressToken": "t"}},
    }


async def events(lines: Any) -> Any:
    """SSE events as dicts (`id`, `data`, `retry`), from an async iterator of lines."""
    event: dict[str, str] = {}
    async for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


async def start_and_drop(
    http: httpx.AsyncClient, url: str, token: str, body: dict[str, Any], keep: int
) -> list[dict[str, str]]:
    """POST a call, read its first `keep` events (the priming one included), then hang up."""
    seen: list[dict[str, str]] = []
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT}
    async with http.stream("POST", f"{url}/mcp", json=body, headers=headers) as response:
        assert response.headers["content-type"] == "text/event-stream"
        async for event in events(response.aiter_lines()):
            seen.append(event)
            if len(seen) == keep:
                break
    return seen


async def resume(http: httpx.AsyncClient, url: str, token: str, last_id: str) -> tuple[int, list[dict[str, str]]]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream", "Last-Event-ID": last_id}
    async with http.stream("GET", f"{url}/mcp", headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, []
        async with asyncio.timeout(20):
            return 200, [event async for event in events(response.aiter_lines())]


def messages(seen: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [json.loads(event["data"]) for event in seen if event.get("data")]


async def test_a_dropped_stream_resumes_with_what_it_missed_then_the_result(
    resumable: ServerProcess, token: str, stub: Any
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        first = await start_and_drop(http, resumable.http_url, token, call("resume me [[stub:delay=2]]"), keep=2)
        priming, progress = first
        assert priming["data"] == "" and priming["retry"] == "1000" and priming["id"].endswith("-0")
        assert json.loads(progress["data"])["method"] == "notifications/progress"
        await asyncio.sleep(0.8)  # the call goes on without a reader, inside the grace
        status, rest = await resume(http, resumable.http_url, token, progress["id"])
    assert status == 200
    stream_id = priming["id"].rsplit("-", 1)[0]
    numbers = [int(event["id"].rsplit("-", 1)[1]) for event in rest if "id" in event]
    # Every event after the one it had, once, in order; nothing from before.
    assert numbers == list(range(2, 2 + len(numbers))) and all(e["id"].startswith(stream_id) for e in rest if "id" in e)
    result = messages(rest)[-1]
    assert result["id"] == 1 and result["result"]["content"][0]["text"].startswith(
        "stub reply from kimi-k2.6: resume me"
    )
    said = [m["params"]["message"] for m in messages(rest) if m.get("method") == "notifications/progress"]
    assert any(message.startswith("working (") for message in said)  # heartbeats sent while nobody read
    assert stub.aborted == 0 and len(stub.chat_requests()) == 1


async def test_a_stream_can_be_resumed_after_its_call_ended_and_only_by_its_owner(
    resumable: ServerProcess, token: str, stub: Any, other_user: Any
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        (priming,) = await start_and_drop(http, resumable.http_url, token, call("quick"), keep=1)
        await wait_for(lambda: len(stub.chat_requests()) == 1, timeout=5)
        await asyncio.sleep(0.5)  # answered meanwhile: the result waits in the log
        status, rest = await resume(http, resumable.http_url, token, priming["id"])
        assert status == 200 and messages(rest)[-1]["result"]["isError"] is False
        someone_else = await resume(http, resumable.http_url, access_token(other_user), priming["id"])
        assert someone_else == (404, [])
        assert (await resume(http, resumable.http_url, token, "not-an-id"))[0] == 400
        assert (await resume(http, resumable.http_url, token, "0" * 32 + "-3"))[0] == 404


async def test_a_stream_nobody_resumes_is_cancelled_after_the_grace(
    resumable: ServerProcess, token: str, stub: Any
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await start_and_drop(http, resumable.http_url, token, call("abandoned [[stub:delay=20]]"), keep=1)
    await wait_for(lambda: stub.in_flight == 1, timeout=5)
    await asyncio.sleep(0.8)
    assert stub.aborted == 0  # still inside the grace (1.5 s)
    await wait_for(lambda: stub.aborted == 1, timeout=5)


@pytest.fixture
def cluster(stub: Any, redis_settings: Any) -> Iterator[list[ServerProcess]]:
    from tests.test_cluster import cluster_environment

    env = {**cluster_environment(stub, redis_settings), "EXAI_MCP_RESUME_GRACE_S": "3", "EXAI_HEARTBEAT_S": "0.3"}
    started = [ServerProcess(env).start() for _ in range(2)]
    yield started
    for process in started:
        process.stop()


async def test_with_redis_a_stream_resumes_at_another_process(
    cluster: list[ServerProcess], token: str, stub: Any
) -> None:
    first, second = cluster
    async with httpx.AsyncClient(timeout=30) as http:
        seen = await start_and_drop(http, first.http_url, token, call("across [[stub:delay=1.5]]"), keep=2)
        status, rest = await resume(http, second.http_url, token, seen[-1]["id"])
    assert status == 200
    result = messages(rest)[-1]
    assert result["id"] == 1 and result["result"]["content"][0]["text"].startswith("stub reply from kimi-k2.6: across")
    assert stub.aborted == 0 and len(stub.chat_requests()) == 1
