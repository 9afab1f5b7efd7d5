"""A loopback reverse proxy that adds `Authorization: Bearer …` to every request it passes on.

The official MCP conformance suite connects without credentials (it has no option for a
header), and every EXAI endpoint wants a token. This proxy sits between the two and changes
nothing else: method, path, body, Host and Origin go through as sent (the DNS-rebinding
scenario depends on them), and responses stream back chunk by chunk (SSE), so a client that
hangs up hangs up on the server too.

    python -m tests.auth_proxy --listen PORT --upstream http://127.0.0.1:8000 --token T
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx
import uvicorn

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


def proxy_app(upstream: str, token: str) -> Any:
    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(None, connect=5))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = (await receive())["type"]
                if event == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event == "lifespan.shutdown":
                    await client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in HOP_BY_HOP]
        headers = [(k, v) for k, v in headers if k.lower() != "authorization"] + [("authorization", f"Bearer {token}")]
        path = scope["raw_path"].decode() + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
        request = client.build_request(scope["method"], path, headers=headers, content=body)
        response = await client.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode(), v.encode()) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP
                    ],
                }
            )
            disconnected = asyncio.ensure_future(_disconnect(receive))
            async for chunk in response.aiter_raw():
                if disconnected.done():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            disconnected.cancel()
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--token", required=True)
    options = parser.parse_args()
    uvicorn.run(proxy_app(options.upstream, options.token), host="127.0.0.1", port=options.listen, log_level="warning")


if __name__ == "__main__":
    main()
