"""deploy/ as an operator uses it: Debian's nginx with deploy/nginx/exai.conf in front of two
daphne processes on PostgreSQL + Redis, an MCP call and a /ws call passed through it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL, ROOT, ServerProcess, database_url, free_port, provider_env
from tests.helpers import MCP_INITIALIZE
from tools_app.client import ExaiClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def behind_nginx(stub: Any, redis_settings: Any, tmp_path: Path) -> Iterator[str]:
    if NGINX is None:
        pytest.skip("no nginx (make test installs Debian's nginx)")
    env = {
        **provider_env(stub),
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "EXAI_REDIS_PREFIX": f"exai-deploy-{uuid.uuid4().hex[:8]}",
        "EXAI_LOG_LEVEL": "ERROR",
    }
    servers = [ServerProcess(env).start(), ServerProcess(env).start()]
    port = free_port()
    site = (ROOT / "deploy" / "nginx" / "exai.conf").read_text()
    site = site.replace("server 127.0.0.1:8001;", f"server 127.0.0.1:{servers[0].port};")
    site = site.replace("server 127.0.0.1:8002;", f"server 127.0.0.1:{servers[1].port};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    (tmp_path / "exai.conf").write_text(site)
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (tmp_path / "nginx.conf").write_text(
        f"""daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {tmp_path}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {tmp_path}/exai.conf;
}}
"""
    )
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")])
    try:
        deadline = time.monotonic() + 10
        while not _answers(f"http://127.0.0.1:{port}/health/live/"):
            assert time.monotonic() < deadline, (tmp_path / "error.log").read_text()
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        for server in servers:
            server.stop()


async def test_an_mcp_call_and_a_ws_call_pass_through_nginx_to_two_server_processes(
    behind_nginx: str, token: str, stub: Any
) -> None:
    base = f"http://{behind_nginx}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=30) as http:
        hello = await http.post(
            f"{base}/mcp",
            json=MCP_INITIALIZE,
            headers=headers,
        )
        assert hello.status_code == 200, hello.text
        session = {**headers, "Mcp-Session-Id": hello.headers["Mcp-Session-Id"]}
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "chat", "arguments": {"prompt": "through nginx"}, "_meta": {"progressToken": 1}},
        }
        answer = await http.post(f"{base}/mcp", json=call, headers=session)
    assert answer.headers["content-type"].startswith("text/event-stream")
    # (The stream's priming event carries an id and empty data: it is no message.)
    events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ") and line[6:]]
    assert any(event.get("method") == "notifications/progress" for event in events)
    assert "through nginx" in events[-1]["result"]["content"][0]["text"]

    async with ExaiClient(f"ws://{behind_nginx}/ws", token) as client:
        results = await asyncio.gather(*(client.call_tool("chat", {"prompt": f"socket {i}"}) for i in range(4)))
    assert all("outputs" in result and f"socket {i}" in result["text"] for i, result in enumerate(results))
