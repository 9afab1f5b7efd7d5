"""Several real server processes sharing Redis: limits exact for the cluster, nothing ever leaks."""

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.conftest import REDIS_URL, ServerProcess, database_url, provider_env
from tests.helpers import MCP_INITIALIZE, wait_for
from tools_app.client import ExaiClient
from tools_app.throttle import Pool
from tools_app.throttle.redis import RedisThrottle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def cluster_env(stub: Any, redis_settings: Any) -> dict[str, str]:
    return cluster_environment(stub, redis_settings)


def cluster_environment(stub: Any, redis_settings: Any) -> dict[str, str]:
    """What a cluster's server processes run with: Redis under a prefix of this test's own."""
    settings = redis_settings
    prefix = f"exai-cluster-{uuid.uuid4().hex[:8]}"
    # The test process reads the same Redis keys as the servers.
    settings.EXAI_REDIS_PREFIX = prefix
    return {
        **provider_env(stub),
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "EXAI_REDIS_PREFIX": prefix,
        "EXAI_MAX_CONCURRENCY": "32",
        "EXAI_KIMI_MAX_CONCURRENCY": "4",
        "EXAI_USER_MAX_CONCURRENCY": "64",
        # One user drives these loads: the cluster-wide provider limit is what they measure.
        "EXAI_USER_PROVIDER_SHARE": "1",
        "EXAI_LEASE_TTL_S": "2",
        "EXAI_CIRCUIT_MIN_CALLS": "100000",  # these tests time out calls on purpose
        # One user's load test, not a test of the rate limits (tests/test_rate_limits.py).
        "EXAI_USER_CALLS_PER_MIN": "0",
        "EXAI_WS_FRAMES_PER_S": "0",
        "EXAI_LOG_LEVEL": "ERROR",
    }


@pytest.fixture
def servers(cluster_env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    started = [ServerProcess(cluster_env).start() for _ in range(2)]
    yield started
    for process in started:
        process.stop()


async def pool_state(name: str, limit: int = 1) -> tuple[int, int]:
    throttle = RedisThrottle()
    from tools_app.throttle.redis import _Keys

    keys = _Keys(Pool(name, limit))
    in_use, waiting = await throttle._count(keys=[keys.holders, keys.alive])
    return int(in_use), int(waiting)


async def all_free(user_id: Any) -> bool:
    pools = ("global", "provider:kimi", "provider:glm", f"user:{user_id}")
    states = [await pool_state(name) for name in pools]
    return all(state == (0, 0) for state in states)


async def test_two_processes_together_never_exceed_the_provider_limit_and_reach_it(
    servers: list[ServerProcess], token: str, stub: Any
) -> None:
    async def client(index: int) -> None:
        server = servers[index % 2]
        async with ExaiClient(f"{server.ws_url}/ws", token) as exai:
            for n in range(10):
                result = await exai.call_tool("chat", {"prompt": f"client {index} call {n} [[stub:delay=0.05]]"})
                # Each client gets its own answers, to the request it made.
                assert f"client {index} call {n} " in result["text"]

    await asyncio.gather(*(client(i) for i in range(20)))
    assert len(stub.chat_requests()) == 200
    assert stub.max_in_flight == 4


async def test_a_thousand_calls_cancelled_abandoned_or_timed_out_leave_every_slot_free(
    cluster_env: dict[str, str], token: str, user: Any, stub: Any
) -> None:
    # Cancels and abandons go to Kimi (long provider delay), timeouts to GLM (0.3 s timeout),
    # so every outcome is certain however slowly a loaded machine runs.
    # Abandoned calls run on for a short resume grace, then are cancelled like the rest.
    cluster_env |= {
        "EXAI_KIMI_MAX_CONCURRENCY": "16",
        "EXAI_GLM_MAX_CONCURRENCY": "16",
        "EXAI_GLM_TIMEOUT_S": "0.3",
        "EXAI_RESUME_GRACE_S": "0.5",
    }
    server = ServerProcess(cluster_env).start()
    url = f"{server.ws_url}/ws?token={token}"
    outcomes: dict[str, list[str]] = {"normal": [], "cancelled": [], "timed_out": []}

    async def result_of(sock: Any) -> str:
        while (reply := json.loads(await sock.recv())).get("op") != "call_tool_res":
            pass
        return "ok" if "outputs" in reply else reply["error"]["code"]

    async def send_chat(sock: Any, request_id: str, **arguments: str) -> None:
        await sock.send(
            json.dumps({"op": "call_tool", "request_id": request_id, "name": "chat", "arguments": arguments})
        )

    async def normal(n: int) -> None:
        async with websockets.connect(url) as sock:
            for i in range(n):
                await send_chat(sock, f"n{i}", prompt=f"ok {i}")
                outcomes["normal"].append(await result_of(sock))

    async def cancelled(n: int) -> None:
        async with websockets.connect(url) as sock:
            for i in range(n):
                await send_chat(sock, f"c{i}", prompt="[[stub:delay=5]]")
                await asyncio.sleep(0.02)
                await sock.send(json.dumps({"op": "cancel", "request_id": f"c{i}"}))
                outcomes["cancelled"].append(await result_of(sock))

    async def abandoned(n: int) -> None:
        async with websockets.connect(url) as sock:
            for i in range(n):
                await send_chat(sock, f"a{i}", prompt="[[stub:delay=1]]")
            await asyncio.sleep(0.1)

    async def timed_out(n: int) -> None:
        async with websockets.connect(url) as sock:
            for i in range(n):
                await send_chat(sock, f"t{i}", prompt="[[stub:delay=2]]", model="glm")
            for _ in range(n):
                outcomes["timed_out"].append(await result_of(sock))

    try:
        await asyncio.gather(
            *(normal(40) for _ in range(10)),
            *(cancelled(20) for _ in range(10)),
            *(abandoned(20) for _ in range(10)),
            *(timed_out(20) for _ in range(10)),
        )
        assert outcomes["normal"] == ["ok"] * 400
        assert outcomes["cancelled"] == ["cancelled"] * 200
        assert outcomes["timed_out"] == ["timeout"] * 200
        await wait_for_async(lambda: all_free(user.pk), timeout=10)
        # Full capacity is usable again: 16 calls run at once.
        stub.reset()
        async with ExaiClient(f"{server.ws_url}/ws", token) as exai:
            results = await asyncio.gather(
                *(exai.call_tool("chat", {"prompt": f"again {i} [[stub:delay=1]]"}) for i in range(16))
            )
        assert all("outputs" in result for result in results)
        assert stub.max_in_flight == 16
    finally:
        server.stop()


async def test_kill_9_of_a_process_holding_slots_returns_its_capacity_within_the_lease_ttl(
    servers: list[ServerProcess], token: str, user: Any, stub: Any
) -> None:
    doomed, survivor = servers
    async with websockets.connect(f"{doomed.ws_url}/ws?token={token}") as sock:
        for i in range(4):
            await sock.send(
                json.dumps(
                    {
                        "op": "call_tool",
                        "request_id": f"k{i}",
                        "name": "chat",
                        "arguments": {"prompt": "[[stub:delay=30]]"},
                    }
                )
            )
        await wait_for(lambda: stub.in_flight == 4, timeout=5)
        assert await pool_state("provider:kimi") == (4, 0)
        assert doomed.process is not None
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=5)
    await wait_for_async(lambda: all_free(user.pk), timeout=2 + 2)  # lease TTL 2 s, plus slack
    async with ExaiClient(f"{survivor.ws_url}/ws", token) as exai:
        result = await exai.call_tool("chat", {"prompt": "after the crash"})
    assert "after the crash" in result["text"]


async def test_sigterm_drains_and_the_client_reconnects_to_the_restarted_server_for_its_answers(
    cluster_env: dict[str, str], token: str, user: Any, stub: Any
) -> None:
    cluster_env["EXAI_DRAIN_S"] = "0.3"
    first = ServerProcess(cluster_env).start()
    client = ExaiClient(f"{first.ws_url}/ws", token, max_backoff_s=0.5)
    await client.connect()
    calls = [
        asyncio.ensure_future(client.call_tool("chat", {"prompt": f"survive {i} [[stub:delay=1]]"})) for i in range(3)
    ]
    await wait_for(lambda: stub.in_flight == 3, timeout=5)
    assert first.process is not None
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=15) == 0
    await wait_for(lambda: stub.aborted == 3, timeout=5)
    second = ServerProcess(cluster_env, port=first.port).start()
    try:
        results = await asyncio.wait_for(asyncio.gather(*calls), timeout=20)
        assert [("outputs" in r, f"survive {i}" in r.get("text", "")) for i, r in enumerate(results)] == [
            (True, True)
        ] * 3
        assert client.reconnects >= 1
        await wait_for_async(lambda: all_free(user.pk), timeout=5)
    finally:
        await client.close()
        second.stop()


async def wait_for_async(condition: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


async def test_a_runworker_process_investigates_errors_a_server_process_captured(
    cluster_env: dict[str, str], token: str, stub: Any
) -> None:
    from errors_app.models import ErrorInvestigation

    server = ServerProcess(cluster_env).start()
    worker = ServerProcess(cluster_env, command=[sys.executable, "manage.py", "runworker", "exai.background"])
    worker.start(listens=False)
    try:
        async with ExaiClient(f"{server.ws_url}/ws", token) as exai:
            result = await exai.call_tool("chat", {"prompt": "down [[stub:status=503]]", "model": "glm"})
        assert result["error"]["code"] == "provider_error"
        async with asyncio.timeout(20):
            while not await ErrorInvestigation.objects.filter(status="investigated").aexists():
                await asyncio.sleep(0.1)
        error = await ErrorInvestigation.objects.aget()
        assert error.error_context["provider"] == "glm" and error.model_used == "kimi-k2.6"
        assert error.investigation_result["root_cause"].startswith("stub analysis")
    finally:
        worker.stop()
        server.stop()


async def test_a_retried_request_id_is_answered_from_the_first_result_by_another_process(
    servers: list[ServerProcess], token: str, stub: Any
) -> None:
    first_server, second_server = servers
    async with ExaiClient(f"{first_server.ws_url}/ws", token, session_id="retry-session") as exai:
        first = await exai.call_tool("chat", {"prompt": "only once"}, request_id="req-1")
    # The client reconnects to another process with the same session and retries the same call.
    async with ExaiClient(f"{second_server.ws_url}/ws", token, session_id="retry-session") as exai:
        retried = await exai.call_tool("chat", {"prompt": "only once"}, request_id="req-1")
        fresh = await exai.call_tool("chat", {"prompt": "only once"}, request_id="req-2")
    assert retried == first
    assert fresh["outputs"][0]["metadata"]["continuation_id"] != first["outputs"][0]["metadata"]["continuation_id"]
    assert len(stub.chat_requests()) == 2


async def test_an_mcp_cancel_sent_to_another_process_stops_the_call(
    servers: list[ServerProcess], token: str, stub: Any
) -> None:
    import httpx

    first, second = servers
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=30) as http:
        hello = await http.post(
            f"{first.http_url}/mcp",
            json=MCP_INITIALIZE,
            headers=auth,
        )
        session = {**auth, "Mcp-Session-Id": hello.headers["Mcp-Session-Id"]}
        call = {
            "jsonrpc": "2.0",
            "id": 42,
            "method": "tools/call",
            "params": {"name": "chat", "arguments": {"prompt": "[[stub:delay=20]]"}, "_meta": {"progressToken": 1}},
        }
        async with http.stream("POST", f"{first.http_url}/mcp", json=call, headers=session) as stream:
            await wait_for(lambda: stub.in_flight == 1, timeout=10)
            cancelled = await http.post(
                f"{second.http_url}/mcp",
                json={"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 42}},
                headers=session,
            )
            assert cancelled.status_code == 202
            async with asyncio.timeout(10):  # the call stops: its stream ends, with no result (the spec)
                body = "".join([chunk async for chunk in stream.aiter_text()])
        assert '"id": 42' not in body
        await wait_for(lambda: stub.in_flight == 0, timeout=5)  # the provider request was stopped too
