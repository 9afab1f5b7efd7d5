"""What MCP over HTTP costs, and what keeping its streams resumable adds: `chat` against the
provider stub, in one go, in embedded mode (SQLite, in-memory) and cluster mode (PostgreSQL +
Redis, where every event of a stream is also written to a Redis stream).

Per mode, one daphne process serves, in turn:
  * `/ws` (the EXAI protocol) — the reference;
  * `POST /mcp` answered as plain JSON (the client accepts only application/json): no
    stream, nothing kept;
  * `POST /mcp` answered as a resumable SSE stream (priming event, progress, the result,
    each kept for a client that comes back);
  * resuming: a call whose client hung up after the priming event, picked up with
    `GET /mcp` + `Last-Event-ID` once it has finished: the time from the GET to its result.
Each run is C concurrent clients making N calls; printed: calls/s and end-to-end latency
p50/p95/p99. Nothing is asserted.

    python benchmarks/mcp_streams.py [--clients 16] [--calls 30] [--modes embedded,cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.common import PYTHON, bench_server, free_port, percentiles, start, stop


def call_body(prompt: str, request_id: int) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "chat", "arguments": {"prompt": prompt}, "_meta": {"progressToken": request_id}},
    }


async def mcp_call(http: httpx.AsyncClient, token: str, prompt: str, stream: bool) -> None:
    accept = "application/json, text/event-stream" if stream else "application/json"
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}
    async with http.stream("POST", "/mcp", json=call_body(prompt, 1), headers=headers) as response:
        body = (await response.aread()).decode()
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {body[:300]}")
    last = body if not stream else [line for line in body.splitlines() if line.startswith("data: {")][-1][6:]
    if "result" not in json.loads(last):
        raise RuntimeError(last[:300])


async def ws_call(client: object, prompt: str) -> None:
    result = await client.call_tool("chat", {"prompt": prompt})  # type: ignore[attr-defined]
    if "error" in result:
        raise RuntimeError(result["error"])


async def drive(kind: str, base: str, token: str, clients: int, calls: int) -> tuple[float, list[float]]:
    from tools_app.client import ExaiClient

    latencies: list[float] = []
    if kind == "ws":
        connections = [ExaiClient(f"{base.replace('http', 'ws')}/ws", token) for _ in range(clients)]
        await asyncio.gather(*(client.connect() for client in connections))
    else:
        connections = [httpx.AsyncClient(base_url=base, timeout=60) for _ in range(clients)]

    async def one(connection: object, prompt: str) -> None:
        if kind == "ws":
            await ws_call(connection, prompt)
        else:
            await mcp_call(connection, token, prompt, stream=kind == "sse")  # type: ignore[arg-type]

    for connection in connections:  # warm up each connection and the server's code paths
        await one(connection, "warm up")

    async def worker(connection: object, index: int) -> None:
        for n in range(calls):
            started = time.perf_counter()
            await one(connection, f"client {index} call {n}")
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(connection, index) for index, connection in enumerate(connections)))
    rate = len(latencies) / (time.perf_counter() - started)
    for connection in connections:
        await connection.aclose() if kind != "ws" else await connection.close()  # type: ignore[attr-defined]
    return rate, latencies


async def drive_resumes(base: str, token: str, clients: int, calls: int) -> tuple[float, list[float]]:
    """Calls whose clients hang up after the priming event, then resume once the call is done."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for n in range(calls):
                body = call_body(f"client {index} resumed {n} [[stub:delay=0.05]]", 1)
                sse = {**headers, "Accept": "application/json, text/event-stream"}
                async with http.stream("POST", "/mcp", json=body, headers=sse) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("id: "):
                            last_id = line[4:]
                            break
                await asyncio.sleep(0.15)  # the call answers meanwhile, with nobody reading
                started = time.perf_counter()
                resume = {**headers, "Accept": "text/event-stream", "Last-Event-ID": last_id}
                async with http.stream("GET", "/mcp", headers=resume) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: {") and '"result"' in line:
                            break
                    else:
                        raise RuntimeError(f"no result after resuming {last_id} ({response.status_code})")
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies


def row(name: str, rate: float, latencies: list[float]) -> str:
    p50, p95, p99 = percentiles(latencies)
    return f"{name:<44} {rate:8.1f}  {p50:7.2f} {p95:7.2f} {p99:7.2f}"


def run_mode(mode: str, args: argparse.Namespace, stub_port: int) -> list[str]:
    env, token = bench_server(
        mode, database_url=args.database_url, redis_url=args.redis_url, stub_port=stub_port, slots=256
    )
    port = free_port()
    process = start(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "exai_site.asgi:application"], port, env
    )
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for kind, label in (("ws", "/ws"), ("json", "POST /mcp, JSON"), ("sse", "POST /mcp, resumable SSE")):
            for clients, calls in ((1, args.calls * 2), (args.clients, args.calls)):
                rate, latencies = asyncio.run(drive(kind, base, token, clients, calls))
                rows.append(row(f"{mode}: {label}, {clients} client{'s' if clients > 1 else ''}", rate, latencies))
        rate, latencies = asyncio.run(drive_resumes(base, token, 4, max(5, args.calls // 3)))
        rows.append(row(f"{mode}: GET + Last-Event-ID -> result, 4 clients", rate, latencies))
    finally:
        stop(process)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=30, help="calls per client")
    parser.add_argument("--modes", default="embedded,cluster")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/exai_bench")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    stub_port = free_port()
    stub = start([PYTHON, "tests/provider_stub.py", "--port", str(stub_port)], stub_port, {})
    rows: list[str] = []
    try:
        for mode in args.modes.split(","):
            rows += run_mode(mode.strip(), args, stub_port)
    finally:
        stop(stub)
    print(f"\nchat over MCP HTTP and /ws: {args.clients} clients x {args.calls} calls, provider stub with no delay")
    print("(the resume row: the GET's time to the result of a call that finished while nobody read)\n")
    print(f"{'run':<44} {'calls/s':>8}  {'end-to-end ms p50/p95/p99':>23}")
    for line in rows:
        print(line)


if __name__ == "__main__":
    main()
