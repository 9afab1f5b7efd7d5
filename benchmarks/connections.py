"""Idle authenticated WebSockets one server process holds, and what each costs it in memory.

Starts daphne (embedded mode, the socket caps raised for the run), opens N sockets to /ws
from this process, each sending `hello` with a token, checks a sample of them still
answers `ping`, and prints the server's RSS before and after: the cost per socket.
Nothing is asserted.

    python benchmarks/connections.py [--sockets 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import PYTHON, free_port, prepared_database, start, stop


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_sockets(url: str, token: str, count: int, at_once: int = 200) -> list[Any]:
    import websockets

    sockets: list[Any] = []
    gate = asyncio.Semaphore(at_once)

    async def one() -> None:
        async with gate:
            ws = await websockets.connect(url, open_timeout=60, ping_interval=None)
            await ws.send(json.dumps({"op": "hello", "token": token}))
            if not json.loads(await ws.recv()).get("ok"):
                raise RuntimeError("hello refused")
            sockets.append(ws)

    await asyncio.gather(*(one() for _ in range(count)))
    return sockets


async def measure(url: str, token: str, count: int, pid: int) -> None:
    await asyncio.sleep(1)
    before = rss_kib(pid)
    started = time.perf_counter()
    sockets = await open_sockets(url, token, count)
    opened_s = time.perf_counter() - started
    await asyncio.sleep(2)  # let the server settle (buffers, collections)
    after = rss_kib(pid)
    sample = sockets[:: max(1, count // 50)]
    for ws in sample:
        await ws.send(json.dumps({"op": "ping"}))
    answered = sum([json.loads(await ws.recv()) == {"op": "pong"} for ws in sample])
    print(f"\nidle authenticated sockets held by one daphne process: {len(sockets)} (opened in {opened_s:.1f} s)")
    print(f"  a sample of {len(sample)} still answers ping: {answered}/{len(sample)}")
    print(f"  server RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")
    print(f"  per socket: {(after - before) / len(sockets):.1f} KiB of RSS")
    await asyncio.gather(*(ws.close() for ws in sockets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=5000)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the client ends
    db_env, token = prepared_database()
    port = free_port()
    env = {
        **db_env,
        "EXAI_LOG_LEVEL": "WARNING",
        "DJANGO_DEBUG": "0",
        "EXAI_WS_MAX_PER_ADDRESS": str(args.sockets + 100),
        "EXAI_WS_MAX_PER_USER": str(args.sockets + 100),
        "EXAI_WS_MAX_SOCKETS": str(args.sockets + 100),
        "EXAI_WS_FRAMES_PER_S": str(10**9),
    }
    server = start(f"{PYTHON} -m daphne -b 127.0.0.1 -p {port} exai_site.asgi:application".split(), port, env)
    try:
        asyncio.run(measure(f"ws://127.0.0.1:{port}/ws", token, args.sockets, server.pid))
    finally:
        stop(server)


if __name__ == "__main__":
    main()
