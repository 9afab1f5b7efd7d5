"""What the gateway costs: `chat` through /ws against the provider stub, next to the SDK alone.

Runs, in one go and on this machine, in embedded mode (SQLite, in-memory layer) and in
cluster mode (PostgreSQL + Redis, the production shape):
  * the floors: the openai SDK streaming the same completions straight from the stub, and
    a bare WebSocket relay (benchmarks/bare_relay.py) doing just that behind a socket;
  * daphne (the default server) serving exai_site.asgi:application;
  * uvicorn serving the same ASGI application.
Each run is C concurrent WebSocket clients making N `chat` calls each. Printed per run:
calls/s, end-to-end latency p50/p95/p99, and the server's overhead (end-to-end minus
the provider call's own time, `processing_ms`) p50/p95/p99, then the server's ratios to
the bare relay. Nothing is asserted.

In cluster mode it also spreads the loaded run over several daphne processes (one per core
by default) sharing PostgreSQL and Redis, and prints that throughput beside one process's.

    python benchmarks/ws_overhead.py [--clients 32] [--calls 40] [--modes embedded,cluster] [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import PYTHON, bench_server, free_port, percentiles, start, stop


async def drive_server(
    url: str | list[str], token: str, clients: int, calls: int
) -> tuple[float, list[float], list[float]]:
    """C clients (spread over the URLs, one server process each) making N calls each."""
    from tools_app.client import ExaiClient

    urls = [url] if isinstance(url, str) else url
    connections = [ExaiClient(urls[index % len(urls)], token) for index in range(clients)]
    await asyncio.gather(*(client.connect() for client in connections))
    for client in connections:  # warm up each connection and the server's code paths
        await client.call_tool("chat", {"prompt": "warm up"})
    end_to_end: list[float] = []
    overhead: list[float] = []

    async def worker(client: ExaiClient, index: int) -> None:
        for call in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("chat", {"prompt": f"client {index} call {call}"})
            elapsed = (time.perf_counter() - started) * 1000
            if "error" in result:
                raise RuntimeError(result["error"])
            provider_ms = result["outputs"][0]["metadata"]["latency_metrics"]["processing_ms"]
            end_to_end.append(elapsed)
            overhead.append(elapsed - provider_ms)

    started = time.perf_counter()
    await asyncio.gather(*(worker(client, i) for i, client in enumerate(connections)))
    wall = time.perf_counter() - started
    await asyncio.gather(*(client.close() for client in connections))
    return clients * calls / wall, end_to_end, overhead


async def drive_sdk(base_url: str, clients: int, calls: int) -> tuple[float, list[float]]:
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0)
    latencies: list[float] = []

    async def one(prompt: str) -> None:
        started = time.perf_counter()
        stream = await client.chat.completions.create(
            model="kimi-k2.6", messages=[{"role": "user", "content": prompt}], stream=True
        )
        async for _ in stream:
            pass
        latencies.append((time.perf_counter() - started) * 1000)

    async def worker(index: int) -> None:
        for call in range(calls):
            await one(f"client {index} call {call}")

    await one("warm up")
    latencies.clear()
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    wall = time.perf_counter() - started
    await client.close()
    return clients * calls / wall, latencies


def row(name: str, rate: float, e2e: list[float], overhead: list[float] | None) -> str:
    e = percentiles(e2e)
    o = percentiles(overhead) if overhead else None
    over = f"{o[0]:7.2f} {o[1]:7.2f} {o[2]:7.2f}" if o else f"{'-':>7} {'-':>7} {'-':>7}"
    return f"{name:<38} {rate:8.1f}  {e[0]:7.2f} {e[1]:7.2f} {e[2]:7.2f}   {over}"


def ratio_lines(mode: str, results: dict[str, tuple[float, list[float]]], clients: int) -> list[str]:
    """The server against the bare relay: p50 and p99 at one client, throughput under load."""
    relay_one, relay_many = results["bare relay, 1 client"], results[f"bare relay, {clients} clients"]
    lines = []
    for server in ("daphne", "uvicorn"):
        one, many = results.get(f"{server}, 1 client"), results.get(f"{server}, {clients} clients")
        if one is None or many is None:
            continue
        p50, _, p99 = percentiles(one[1])
        relay_p50, _, relay_p99 = percentiles(relay_one[1])
        lines.append(
            f"{mode:<9} {server:<8} p50 {p50:5.2f} vs {relay_p50:5.2f} ms ({p50 / relay_p50:4.2f}x)   "
            f"p99 {p99:5.2f} vs {relay_p99:5.2f} ms ({p99 / relay_p99:4.2f}x)   "
            f"{clients} clients {many[0]:6.1f} vs {relay_many[0]:6.1f} calls/s ({many[0] / relay_many[0]:4.2f}x)"
        )
    return lines


def run_mode(mode: str, args: argparse.Namespace, stub_port: int) -> tuple[list[str], list[str]]:
    """Every run of one mode: the floors (SDK direct, bare relay), then the server on daphne and uvicorn."""
    # The benchmark measures the gateway, not queueing: give every client a slot.
    env, token = bench_server(
        mode, database_url=args.database_url, redis_url=args.redis_url, stub_port=stub_port, slots=max(64, args.clients)
    )
    rows: list[str] = []
    results: dict[str, tuple[float, list[float]]] = {}

    def record(name: str, rate: float, e2e: list[float], overhead: list[float] | None) -> None:
        results[name] = (rate, e2e)
        rows.append(row(f"{mode}: {name}", rate, e2e, overhead))

    stub_url = f"http://127.0.0.1:{stub_port}/v1"
    rate, latencies = asyncio.run(drive_sdk(stub_url, 1, args.calls * 4))
    record("SDK direct, 1 client", rate, latencies, None)
    rate, latencies = asyncio.run(drive_sdk(stub_url, args.clients, args.calls))
    record(f"SDK direct, {args.clients} clients", rate, latencies, None)
    servers = {
        "bare relay": "{python} benchmarks/bare_relay.py --port {port} --provider-url " + stub_url,
        "daphne": "{python} -m daphne -b 127.0.0.1 -p {port} exai_site.asgi:application",
        "uvicorn": "{python} -m uvicorn exai_site.asgi:application --host 127.0.0.1 --port {port} "
        "--log-level warning --no-access-log",
    }
    if mode == "cluster" and args.processes > 1:
        # The same load spread over several daphne processes sharing PostgreSQL and Redis.
        ports = [free_port() for _ in range(args.processes)]
        processes = [start(servers["daphne"].format(python=PYTHON, port=port).split(), port, env) for port in ports]
        try:
            urls = [f"ws://127.0.0.1:{port}/ws" for port in ports]
            rate, e2e, overhead = asyncio.run(drive_server(urls, token, args.clients, args.calls))
            record(f"daphne x{args.processes}, {args.clients} clients", rate, e2e, overhead)
        finally:
            for process in processes:
                stop(process)
    for name, template in servers.items():
        port = free_port()
        process = start(template.format(python=PYTHON, port=port).split(), port, env)
        url = f"ws://127.0.0.1:{port}/ws"
        try:
            # One client alone shows the gateway's own cost per call; the loaded run shows
            # throughput, where overhead also holds the wait for a busy CPU.
            rate, e2e, overhead = asyncio.run(drive_server(url, token, 1, args.calls * 4))
            record(f"{name}, 1 client", rate, e2e, overhead)
            rate, e2e, overhead = asyncio.run(drive_server(url, token, args.clients, args.calls))
            record(f"{name}, {args.clients} clients", rate, e2e, overhead)
        finally:
            stop(process)
    lines = ratio_lines(mode, results, args.clients)
    several = results.get(f"daphne x{args.processes}, {args.clients} clients")
    one = results.get(f"daphne, {args.clients} clients")
    if several is not None and one is not None:
        lines.append(
            f"{mode:<9} daphne x{args.processes} vs one process, {args.clients} clients: "
            f"{several[0]:6.1f} vs {one[0]:6.1f} calls/s ({several[0] / one[0]:4.2f}x) on {os.cpu_count()} cores"
        )
    return rows, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--calls", type=int, default=40, help="calls per client")
    parser.add_argument("--modes", default="embedded,cluster", help="embedded, cluster, or both (comma-separated)")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="daphne processes for the cluster's scaling run"
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/exai_bench")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    stub_port = free_port()
    stub = start([PYTHON, "tests/provider_stub.py", "--port", str(stub_port)], stub_port, {})
    rows: list[str] = []
    ratios: list[str] = []
    try:
        for mode in args.modes.split(","):
            mode_rows, mode_ratios = run_mode(mode.strip(), args, stub_port)
            rows += mode_rows
            ratios += mode_ratios
    finally:
        stop(stub)

    print(f"\nchat through /ws: {args.clients} clients x {args.calls} calls, provider stub with no delay")
    print("embedded: SQLite and the in-memory layer; cluster: PostgreSQL + Redis\n")
    print(f"{'run':<38} {'calls/s':>8}  {'end-to-end ms p50/p95/p99':>23}   {'server overhead ms p50/p95/p99':>29}")
    for line in rows:
        print(line)
    print("\nthe server against the bare relay (goal: p50 <= 1.5x, p99 <= 3x, throughput >= 0.7x)")
    for line in ratios:
        print(line)


if __name__ == "__main__":
    main()
