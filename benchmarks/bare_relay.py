"""The floor for any WebSocket gateway: take a `call_tool` frame, ask the provider, send the answer back.

A `websockets` server speaking just enough of the EXAI protocol (hello, call_tool, ping)
for the project's client, calling the provider with the openai SDK (streamed, as the
server does) and nothing else: no auth, throttle, breaker, metrics, storage. What
`benchmarks/ws_overhead.py` compares the server with.

    python benchmarks/bare_relay.py --port 8090 --provider-url http://127.0.0.1:8091/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import openai
import websockets


async def serve(port: int, provider_url: str) -> None:
    client = openai.AsyncOpenAI(api_key="bench", base_url=provider_url, max_retries=0)

    async def answer(ws: Any, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        await ws.send(json.dumps({"op": "call_tool_ack", "request_id": request_id, "accepted": True}))
        prompt = (message.get("arguments") or {}).get("prompt", "")
        started = time.perf_counter()
        stream = await client.chat.completions.create(
            model="kimi-k2.6", messages=[{"role": "user", "content": prompt}], stream=True
        )
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        text = "".join(parts)
        metadata = {"latency_metrics": {"processing_ms": (time.perf_counter() - started) * 1000}}
        outputs = [{"type": "text", "text": text, "metadata": metadata}]
        await ws.send(json.dumps({"op": "call_tool_res", "request_id": request_id, "outputs": outputs, "text": text}))

    async def handler(ws: Any) -> None:
        calls: set[asyncio.Task[None]] = set()
        async for raw in ws:
            message = json.loads(raw)
            op = message.get("op")
            if op == "hello":
                await ws.send(json.dumps({"op": "hello_ack", "ok": True, "session_id": "relay"}))
            elif op == "ping":
                await ws.send(json.dumps({"op": "pong"}))
            elif op == "call_tool":
                task = asyncio.ensure_future(answer(ws, message))
                calls.add(task)
                task.add_done_callback(calls.discard)

    async with websockets.serve(handler, "127.0.0.1", port, max_size=None):
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--provider-url", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.provider_url))


if __name__ == "__main__":
    main()
