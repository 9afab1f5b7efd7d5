"""A loopback stand-in for the Moonshot and Z.ai HTTP APIs, for tests and benchmarks.

It speaks what the real SDKs send: chat completions (JSON and SSE streaming) under
`/v1` (Moonshot) and `/api/paas/v4` (Z.ai), and the files API (upload, list,
retrieve, content, delete). The last user message may carry directives that
shape the answer, so a test says what it needs right in its prompt:

    [[stub:delay=0.5]]       think that long before answering (a disconnect meanwhile counts as aborted)
    [[stub:status=503]]      answer with that HTTP status and an error body
    [[stub:fail_first=2]]    fail the first N attempts of this prompt with 500, then answer
    [[stub:retry_after=3]]   with status=429, send a Retry-After header
    [[stub:bad_json=yes]]    when asked for a JSON object (response_format), answer prose instead
    [[stub:words=5000]]      answer that many words, in paragraphs of 50 (a long reply)
    [[stub:fail_model=glm-4.5]]  answer 503 to requests for that model only (the others answer)
    [[stub:call_tool=get_weather]]  (not streamed, with `tools`) ask for that function to be called

`POST /api/paas/v4/web_search` answers Z.ai's search API with made-up results.
A request that turns on Z.ai's web search (a `web_search` tool) is answered with
"[searched the web]" first, as a search-backed answer would cite what it found.

An uploaded file's name may carry `delay` and `status` directives too, and
`delete_delay`, which slows the file's deletion. The key `bad-key`
is refused with 401. Everything it saw is in `requests`; it also
counts requests in flight and the most ever in flight at once.

Run alone for benchmarks: `python tests/provider_stub.py --port 8190`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_DIRECTIVE = re.compile(r"\[\[stub:(\w+)=([\w.\-]+)\]\]")
_CHAT = re.compile(r"^/(?:v1|api/paas/v4)/chat/completions$")
_FILES = re.compile(r"^/(?:v1|api/paas/v4)/files(?:/(?P<id>[\w-]+)(?P<content>/content)?)?$")


class ProviderStub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.aborted = 0
        self.bad_json_answers = 0  # the next N JSON answers come back as prose
        self._attempts: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle -----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> ProviderStub:
        import uvicorn

        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listener says so, and without it every reused connection stalls 40 ms on delayed ACKs.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self, log_level="warning", lifespan="off", timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("provider stub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reset(self) -> None:
        self.requests.clear()
        self.files.clear()
        self._attempts.clear()
        self.in_flight = self.max_in_flight = self.aborted = self.bad_json_answers = 0

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == "chat"]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """What it saw of one kind: chat, file_upload, file_upload_attempt, file_content, file_delete."""
        return [r for r in self.requests if r["kind"] == kind]

    # --- ASGI ----------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") == "bad-key":
            await _json(
                send,
                401,
                {"error": {"message": "Invalid Authentication", "type": "invalid_authentication_error"}},
            )
            return
        body = await _read_body(receive)
        if body is None:
            self.aborted += 1
            return
        path, method = scope["path"].rstrip("/"), scope["method"]
        if _CHAT.match(path) and method == "POST":
            await self._chat(path, json.loads(body), receive, send)
        elif path == "/api/paas/v4/web_search" and method == "POST":
            await self._web_search(json.loads(body), send)
        elif match := _FILES.match(path):
            query = dict(parse_qsl(scope.get("query_string", b"").decode()))
            await self._files(method, match["id"], bool(match["content"]), headers, body, query, receive, send)
        else:
            await _json(send, 404, {"error": {"message": f"no route {method} {path}"}})

    async def _web_search(self, payload: dict[str, Any], send: Send) -> None:
        """Z.ai's search endpoint: `count` made-up results about the query, one per domain filter if given."""
        self.requests.append({"kind": "web_search", "payload": payload})
        query = payload.get("search_query", "")
        if "[[stub:status=" in query:
            await _json(send, int(_DIRECTIVE.findall(query)[0][1]), {"error": {"message": "stub search error"}})
            return
        domain = payload.get("search_domain_filter") or "example.org"
        results = [
            {
                "title": f"Result {n} for {query}",
                "link": f"https://{domain}/{n}",
                "content": f"What page {n} says about {query}.",
                "icon": "",
                "media": domain,
                "refer": f"ref_{n}",
                "publish_date": "2026-11-01",
            }
            for n in range(1, int(payload.get("count") or 3) + 1)
        ]
        await _json(
            send, 200, {"id": f"search-{next(self._ids)}", "created": int(time.time()), "search_result": results}
        )

    async def _chat(self, path: str, payload: dict[str, Any], receive: Receive, send: Send) -> None:
        messages = payload.get("messages", [])
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        last_text = last_user if isinstance(last_user, str) else json.dumps(last_user)
        directives = dict(_DIRECTIVE.findall(last_text))
        self.requests.append({"kind": "chat", "path": path, "payload": payload})
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._attempts[last_text] += 1
            if self._attempts[last_text] <= int(directives.get("fail_first", 0)):
                await _json(send, 500, {"error": {"message": "stub transient failure", "type": "server_error"}})
                return
            status = int(directives.get("status", 0))
            if directives.get("fail_model") == payload.get("model"):
                status = 503
            if status:
                headers = [(b"retry-after", directives["retry_after"].encode())] if "retry_after" in directives else []
                await _json(
                    send,
                    status,
                    {"error": {"message": f"stub error {status}", "type": "stub_error"}},
                    headers,
                )
                return
            model = payload.get("model", "unknown")
            reply = f"stub reply from {model}: {_DIRECTIVE.sub('', last_text).strip()} (saw {len(messages)} messages)"
            if words := int(directives.get("words", 0)):
                reply = "\n\n".join(
                    " ".join(f"word{n}" for n in range(start, min(start + 50, words))) for start in range(0, words, 50)
                )
            tools = payload.get("tools") or []
            searched = any(m.get("role") == "tool" and m.get("name") == "$web_search" for m in messages)
            if any(tool.get("type") == "web_search" for tool in tools) or searched:
                reply = f"[searched the web] {reply}"
            if not searched and any(t.get("function", {}).get("name") == "$web_search" for t in tools):
                # Moonshot's built-in search: first ask for it as a tool call, to be echoed back.
                await self._stream_search_call(send, model)
                return
            if (payload.get("response_format") or {}).get("type") == "json_object":
                spoil = self.bad_json_answers > 0
                self.bad_json_answers -= int(spoil)
                reply = _json_answer(last_text, {**directives, "bad_json": "yes"} if spoil else directives)
            usage = {
                "prompt_tokens": sum(len(str(m.get("content", ""))) // 4 for m in messages) + 1,
                "completion_tokens": len(reply) // 4 + 1,
            }
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            delay = float(directives.get("delay", 0))
            if payload.get("stream"):
                # Like the real APIs, a stream sends its headers at once and then thinks.
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
                    }
                )
                if delay and await _disconnected_within(receive, delay):
                    self.aborted += 1
                    return
                await self._stream(send, model, reply, usage)
            else:
                if delay and await _disconnected_within(receive, delay):
                    self.aborted += 1
                    return
                await _json(
                    send,
                    200,
                    {
                        "id": f"chatcmpl-{next(self._ids)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "usage": usage,
                        "choices": [
                            {
                                "index": 0,
                                **_tool_call_or(reply, directives.get("call_tool"), payload),
                            }
                        ],
                    },
                )
        finally:
            self.in_flight -= 1

    async def _stream_search_call(self, send: Send, model: str) -> None:
        """A streamed round that asks for Moonshot's `$web_search`, as Kimi does before answering."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        call = {
            "index": 0,
            "id": "call_search",
            "type": "builtin_function",
            "function": {"name": "$web_search", "arguments": '{"search_result": {"search_id": "s1"}}'},
        }
        chunk = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}, "finish_reason": "tool_calls"}
            ],
        }
        await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _stream(self, send: Send, model: str, reply: str, usage: dict[str, int]) -> None:
        ident, created = f"chatcmpl-{next(self._ids)}", int(time.time())
        words = reply.split(" ")
        for index, word in enumerate(words):
            delta = {"role": "assistant", "content": word if index == 0 else " " + word}
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        final = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": usage}],
            "usage": usage,
        }
        await send({"type": "http.response.body", "body": _sse(final) + b"data: [DONE]\n\n", "more_body": False})

    async def _files(
        self,
        method: str,
        file_id: str | None,
        content: bool,
        headers: dict[str, str],
        body: bytes,
        query: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        if file_id is None and method == "POST":
            filename, data, purpose = _parse_multipart(headers.get("content-type", ""), body)
            directives = dict(_DIRECTIVE.findall(filename))
            self.requests.append(
                {"kind": "file_upload_attempt", "filename": filename, "sha256": hashlib.sha256(data).hexdigest()}
            )
            if (delay := float(directives.get("delay", 0))) and await _disconnected_within(receive, delay):
                self.aborted += 1
                return
            if status := int(directives.get("status", 0)):
                await _json(send, status, {"error": {"message": f"stub upload error {status}", "type": "stub_error"}})
                return
            new_id = f"file-{next(self._ids)}"
            record = {
                "id": new_id,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": purpose,
                "status": "ok",
                "status_details": "",
            }
            self.files[new_id] = {**record, "_data": data}
            self.requests.append(
                {
                    "kind": "file_upload",
                    "id": new_id,
                    "bytes": len(data),
                    "filename": filename,
                    "purpose": purpose,
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
            await _json(send, 200, record)
        elif file_id is None and method == "GET":
            # Cursor pagination as the real APIs do it: `after` an id, at most `limit`, `has_more`.
            records = [_public(f) for f in self.files.values()]
            if after := query.get("after"):
                ids = [r["id"] for r in records]
                records = records[ids.index(after) + 1 :] if after in ids else []
            limit = int(query.get("limit", 100))
            await _json(send, 200, {"object": "list", "data": records[:limit], "has_more": len(records) > limit})
        elif file_id not in self.files:
            await _json(send, 404, {"error": {"message": f"file {file_id} not found", "type": "not_found"}})
        elif method == "DELETE":
            if delay := float(dict(_DIRECTIVE.findall(self.files[file_id]["filename"])).get("delete_delay", 0)):
                await asyncio.sleep(delay)
            self.files.pop(file_id, None)
            self.requests.append({"kind": "file_delete", "id": file_id})
            await _json(send, 200, {"id": file_id, "object": "file", "deleted": True})
        elif content:
            self.requests.append({"kind": "file_content", "id": file_id})
            record = self.files[file_id]
            text = record["_data"].decode("utf-8", "replace")
            await _json(
                send,
                200,
                {
                    "content": text,
                    "file_type": "text/plain",
                    "filename": record["filename"],
                    "title": "",
                    "type": "file",
                },
            )
        else:
            await _json(send, 200, _public(self.files[file_id]))


def _json_answer(prompt: str, directives: dict[str, str]) -> str:
    """What a model asked for a JSON object answers (or, with bad_json=yes, fails to)."""
    if directives.get("bad_json") == "yes":
        return "I think the problem is probably the network, but I am not sure."
    first_line = _DIRECTIVE.sub("", prompt).strip().splitlines()[0] if prompt.strip() else ""
    return json.dumps(
        {
            "root_cause": f"stub analysis of {first_line}",
            "evidence": ["the stack trace ends in the named location"],
            "fix_steps": ["handle the failing case", "add a regression test"],
            "code_suggestion": "try:\n    ...\nexcept SomeError:\n    ...",
            "confidence": "medium",
        }
    )


def _tool_call_or(reply: str, function: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """A choice asking for `function` to be called (when the request offered it), else the plain reply."""
    offered = {tool.get("function", {}).get("name") for tool in payload.get("tools") or []}
    if function and function in offered:
        call = {"id": "call_1", "type": "function", "function": {"name": function, "arguments": '{"city": "Oslo"}'}}
        return {"finish_reason": "tool_calls", "message": {"role": "assistant", "content": "", "tool_calls": [call]}}
    return {"finish_reason": "stop", "message": {"role": "assistant", "content": reply}}


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None when the client went away before sending all of it."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _disconnected_within(receive: Receive, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
            return True
    except TimeoutError:
        return False


async def _json(
    send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(extra or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _parse_multipart(content_type: str, body: bytes) -> tuple[str, bytes, str]:
    boundary = content_type.split("boundary=")[-1].strip('"').encode()
    filename, data, purpose = "upload", b"", ""
    for part in body.split(b"--" + boundary):
        head, _, value = part.partition(b"\r\n\r\n")
        value = value.removesuffix(b"\r\n")
        if b'name="file"' in head:
            found = re.search(rb'filename="([^"]*)"', head)
            filename = found.group(1).decode() if found else filename
            data = value
        elif b'name="purpose"' in head:
            purpose = value.decode()
    return filename, data, purpose


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8190)
    args = parser.parse_args()
    stub = ProviderStub().start(args.port)
    print(f"provider stub on {stub.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()
