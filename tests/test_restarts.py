"""Redis and PostgreSQL restarting under load: answers in hand are delivered, nothing hangs, limits heal.

Private instances (tests/services.py): the test kills them and starts them again.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
import websockets

from tests.conftest import ROOT, ServerProcess, access_token, server_env
from tests.provider_stub import ProviderStub
from tests.services import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


INITIALIZE_PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


async def chat(server: ServerProcess, token: str, prompt: str) -> dict[str, Any]:
    """One `chat` call over /ws; its `call_tool_res` (every call must end: 40 s at most)."""
    async with asyncio.timeout(40), websockets.connect(f"{server.ws_url}/ws") as ws:
        await ws.send(json.dumps({"op": "hello", "token": token}))
        assert json.loads(await ws.recv())["ok"] is True
        arguments = {"prompt": prompt, "model": "kimi"}
        await ws.send(json.dumps({"op": "call_tool", "request_id": "r", "name": "chat", "arguments": arguments}))
        while (frame := json.loads(await ws.recv()))["op"] != "call_tool_res":
            pass
        return frame


async def ready(server: ServerProcess) -> int:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        return (await client.get("/health/ready/")).status_code


async def until(condition: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.1)


async def test_a_redis_restart_under_load_delivers_answers_in_hand_and_heals(
    django_db_blocker: Any, provider_stub: ProviderStub, file_root: Path, tmp_path: Path, user: Any, stub: Any
) -> None:
    redis = PrivateRedis(tmp_path).start()
    prefix = f"restart-{uuid.uuid4().hex[:6]}"
    env = server_env(
        django_db_blocker,
        provider_stub,
        file_root,
        REDIS_URL=redis.url,
        EXAI_REDIS_PREFIX=prefix,
        EXAI_KIMI_MAX_CONCURRENCY="3",
        EXAI_USER_PROVIDER_SHARE="1",  # one user's load: the provider limit is what is measured
        EXAI_USER_CALLS_PER_MIN="0",
        EXAI_WS_FRAMES_PER_S="0",
    )
    servers = [ServerProcess(env).start() for _ in range(2)]
    token = access_token(user)
    try:
        calls = [asyncio.ensure_future(chat(servers[i % 2], token, f"c{i} [[stub:delay=1.5]]")) for i in range(18)]

        async def three_hold_slots() -> bool:
            return stub.in_flight == 3

        await until(three_hold_slots)
        redis.kill()
        await until(lambda: _not_ready(servers[0]))  # readiness tells the outage
        # REST and MCP over HTTP (rate-limit counts and sessions live in Redis) say "come back".
        async with httpx.AsyncClient(
            base_url=servers[1].http_url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            listing = await client.get("/api/tools/")
            initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE_PARAMS}
            mcp = await client.post("/mcp", json=initialize, headers={"Accept": "application/json"})
        assert listing.status_code == 503 and listing.json()["error"]["code"] == "overloaded"
        assert mcp.status_code == 503 and "Redis is unreachable" in mcp.json()["error"]["message"]
        await asyncio.sleep(3)
        redis.start()
        outcomes = await asyncio.gather(*calls)

        answered = [o for o in outcomes if "error" not in o]
        refused = [o["error"] for o in outcomes if "error" in o]
        assert len(answered) >= 3  # those that held slots had their answers: delivered
        assert all(error["code"] == "overloaded" and error["retry_after_s"] > 0 for error in refused), refused
        assert all("Redis is unreachable" in error["message"] for error in refused)

        # Within seconds the cluster serves again, with its exact limits.
        for server in servers:
            await until(lambda server=server: _ready(server))
        stub.max_in_flight = 0
        after = await asyncio.gather(*(chat(servers[i % 2], token, f"a{i} [[stub:delay=0.3]]") for i in range(18)))
        assert [o.get("error") for o in after] == [None] * 18
        assert stub.max_in_flight == 3
        # Every slot given back: none leaked by the outage, none counted twice.
        client = aioredis.Redis.from_url(redis.url)
        for pool in ("global", "provider:kimi", f"user:{user.pk}", f"user:{user.pk}:kimi"):
            assert await client.zcard(f"{prefix}:sem:{pool}:holders") == 0, pool
        await client.aclose()
    finally:
        for server in servers:
            server.stop()
        redis.kill()


async def _ready(server: ServerProcess) -> bool:
    return await ready(server) == 200


async def _not_ready(server: ServerProcess) -> bool:
    return await ready(server) == 503


def manage(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "manage.py", *args]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def rows(url: str, table: str, where: str = "TRUE") -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]  # type: ignore[index]


async def test_a_database_restart_under_load_delivers_answers_and_writes_them_when_it_returns(
    django_db_blocker: Any, provider_stub: ProviderStub, file_root: Path, stub: Any
) -> None:
    pg = PrivatePostgres().start()
    try:
        env = {
            **server_env(django_db_blocker, provider_stub, file_root),
            "DATABASE_URL": pg.url,
            "EXAI_DB_CONN_MAX_AGE_S": "300",
            "EXAI_KIMI_MAX_CONCURRENCY": "8",
            "EXAI_USER_PROVIDER_SHARE": "1",  # all eight in flight at once
        }
        env.pop("REDIS_URL", None)
        manage(env, "migrate", "-v0")
        token = manage(env, "issue_token", "operator", "--create")
        server = ServerProcess(env).start()
        try:
            sockets = [await hello(server, token) for _ in range(8)]
            calls = [asyncio.ensure_future(call(ws, f"q{i} [[stub:delay=1.5]]")) for i, ws in enumerate(sockets)]

            async def all_asked() -> bool:
                return len(stub.chat_requests()) == 8

            await until(all_asked)
            pg.kill()
            # While it is down: a new socket is told to come back, readiness says why.
            async with websockets.connect(f"{server.ws_url}/ws") as ws:
                await ws.send(json.dumps({"op": "hello", "token": token}))
                ack = json.loads(await ws.recv())
                assert ack["ok"] is False and ack["error"]["code"] == "overloaded" and ack["error"]["retry_after_s"]
            assert await ready(server) == 503
            async with httpx.AsyncClient(
                base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}
            ) as rest:
                listing = await rest.get("/api/tools/")  # its token cannot be checked now
            assert listing.status_code == 503 and listing.json()["error"]["code"] == "overloaded"
            assert listing.headers["Retry-After"]
            outcomes = await asyncio.gather(*calls)
            # Every provider answered while the database was down: every answer is delivered.
            assert [o.get("error") for o in outcomes] == [None] * 8
            threads = [o["outputs"][0]["metadata"]["continuation_id"] for o in outcomes]
            # The thread's next turn, asked while its first is not written yet: it waits for it,
            # then goes on where the thread was (the model sees the first turn).
            follow = asyncio.ensure_future(call(sockets[0], "and then?", continuation_id=threads[0]))
            await asyncio.sleep(1.5)
            pg.start()
            follow_up = await follow
            assert "error" not in follow_up, follow_up
            assert follow_up["outputs"][0]["metadata"]["continuation_id"] == threads[0]
            assert "q0" in json.dumps(stub.chat_requests()[-1]["payload"]["messages"])

            # The turns and the latency samples of the calls answered during the outage are written.
            await until(lambda: _ready(server))

            async def written() -> bool:
                samples = rows(pg.url, "metrics_app_latencysample", "tool = 'chat'")
                return rows(pg.url, "tools_app_message") == 18 and samples == 9

            await until(written, timeout=30)
            assert rows(pg.url, "tools_app_conversation") == 8

            # The errors captured meanwhile (readiness answering 503) are written too.
            async def errors_written() -> bool:
                return rows(pg.url, "errors_app_errorinvestigation", "error_type = 'log:django.request'") >= 1

            await until(errors_written, timeout=30)
            for ws in sockets:
                await ws.close()
        finally:
            server.stop()
    finally:
        pg.remove()


async def hello(server: ServerProcess, token: str) -> Any:
    ws = await websockets.connect(f"{server.ws_url}/ws")
    await ws.send(json.dumps({"op": "hello", "token": token}))
    assert json.loads(await ws.recv())["ok"] is True
    return ws


async def call(ws: Any, prompt: str, **arguments: Any) -> dict[str, Any]:
    request_id = uuid.uuid4().hex
    frame = {"prompt": prompt, "model": "kimi", **arguments}
    await ws.send(json.dumps({"op": "call_tool", "request_id": request_id, "name": "chat", "arguments": frame}))
    async with asyncio.timeout(40):
        while (message := json.loads(await ws.recv()))["op"] != "call_tool_res":
            pass
    return message


async def test_the_background_worker_listens_again_after_redis_restarts(
    django_db_blocker: Any, provider_stub: ProviderStub, file_root: Path, tmp_path: Path, stub: Any
) -> None:
    from channels_redis.core import RedisChannelLayer
    from django.utils import timezone

    from errors_app.models import ErrorInvestigation

    redis = PrivateRedis(tmp_path).start()
    prefix = f"worker-{uuid.uuid4().hex[:6]}"
    env = server_env(django_db_blocker, provider_stub, file_root, REDIS_URL=redis.url, EXAI_REDIS_PREFIX=prefix)
    worker = ServerProcess(env, command=[sys.executable, "manage.py", "runworker", "exai.background"]).start(
        listens=False
    )
    try:
        await asyncio.sleep(2)  # listening
        redis.kill()
        await asyncio.sleep(2)
        redis.start()
        assert worker.process is not None and worker.process.poll() is None  # still there

        error = await ErrorInvestigation.objects.acreate(
            error_hash=uuid.uuid4().hex,
            error_type="ValueError",
            error_message="a value went wrong",
            location="tools_app/x.py in f",
            last_occurrence_at=timezone.now(),
        )
        layer = RedisChannelLayer(hosts=[redis.url], prefix=prefix)
        await layer.send("exai.background", {"type": "error.investigate", "error_id": error.pk})

        async def investigated() -> bool:
            await error.arefresh_from_db()
            return error.status == ErrorInvestigation.Status.INVESTIGATED

        await until(investigated, timeout=30)  # picked up by the worker, after the outage
    finally:
        worker.stop()
        redis.kill()
