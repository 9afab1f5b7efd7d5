"""A loopback stand-in for the Moonshot and Z.ai HTTP APIs, for tests and benchmarks.

It speaks what the real SDKs send: chat completions (JSON and SSE streaming) under
`/v1` (Moonshot), `/api/paas/v4` (Z.ai) and `/local/v1` (any OpenAI-compatible server,
which serves whatever model it is asked for), `GET .../models` (the live lists, which a
test may change: `kimi_models`, `glm_models`), and the files API (upload, list, retrieve,
content, delete). It refuses what the providers refuse today (tests/stub_world.py):
retired and unknown models, sampling a thinking model pins, `thinking` together with
`reasoning_effort`, and more. Thinking models stream `reasoning_content` first.

The last user message may carry directives that shape the answer, so a test says what
it needs right in its prompt:

    [[stub:delay=0.5]]       think that long before answering (a disconnect meanwhile counts as aborted)
    [[stub:status=503]]      answer with that HTTP status and an error body
    [[stub:fail_first=2]]    fail the first N attempts of this prompt with 500 (or fail_status), then answer
    [[stub:fail_status=429]] the status fail_first answers with
    [[stub:retry_after=3]]   with status=429 (or fail_status=429), send a Retry-After header
    [[stub:bad_json=yes]]    when asked for a JSON object (response_format), answer prose instead
    [[stub:words=5000]]      answer that many words, in paragraphs of 50 (a long reply)
    [[stub:stream_s=45]]     stream the answer steadily over that many seconds (a long expert answer)
    [[stub:silence=3]]       after the first chunk of the answer, say nothing for that long, then go on
    [[stub:cut=5]]           end the stream after that many words of answer, with no finish_reason nor [DONE]
    [[stub:reset=5]]         break the connection after that many words of answer (no end of the chunked body)
    [[stub:garbage=yes]]     answer 200 with an HTML page instead of JSON or SSE
    [[stub:reasoning_words=400]]  a thinking model reasons that many words first (default 20)
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
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

if __package__ in (None, ""):  # run as a script (benchmarks): make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stub_world import (
    GLM_TODAY,
    KIMI_DEFAULT_MAX_TOKENS,
    KIMI_TODAY,
    model_list,
    reasoning_for,
    refusal,
    thinking_active,
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_DIRECTIVE = re.compile(r"\[\[stub:(\w+)=([\w.\-]+)\]\]")
_BASE = r"(?P<base>v1|api/paas/v4|local/v1)"
_PROVIDERS = {"v1": "kimi", "api/paas/v4": "glm", "local/v1": "local"}
_CHAT = re.compile(rf"^/{_BASE}/chat/completions$")
_MODELS = re.compile(rf"^/{_BASE}/models$")
_FILES = re.compile(r"^/(?:v1|api/paas/v4)/files(?:/(?P<id>[\w-]+)(?P<content>/content)?)?$")


class ProviderStub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.aborted = 0
        self.bad_json_answers = 0  # the next N JSON answers come back as prose
        # What `GET /models` lists now; a test may rotate them (a model retired, a new one added).
        self.kimi_models = list(KIMI_TODAY)
        self.glm_models = list(GLM_TODAY)
        self.local_models = ["qwen2.5-coder"]
        self.models_status = 0  # answer `GET /models` with this error status instead (0: list)
        self._attempts: Counter[str] = Counter()
        # The providers' context caches: message-list prefixes seen, per provider and model.
        self._seen_prefixes: set[tuple[str, str, str]] = set()
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
        self._seen_prefixes.clear()
        self.in_flight = self.max_in_flight = self.aborted = self.bad_json_answers = 0
        self.kimi_models, self.glm_models = list(KIMI_TODAY), list(GLM_TODAY)
        self.local_models = ["qwen2.5-coder"]
        self.models_status = 0

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == "chat"]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """What it saw of one kind: chat, models, file_upload, file_upload_attempt, file_content, file_delete."""
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
        if match := _CHAT.match(path):
            if method == "POST":
                await self._chat(path, _PROVIDERS[match["base"]], json.loads(body), receive, send)
                return
        elif match := _MODELS.match(path):
            provider = _PROVIDERS[match["base"]]
            self.requests.append({"kind": "models", "provider": provider})
            if self.models_status:
                await _json(send, self.models_status, {"error": {"message": "stub: no list", "type": "server_error"}})
                return
            listed = {"kimi": self.kimi_models, "glm": self.glm_models, "local": self.local_models}[provider]
            await _json(send, 200, model_list(listed, {"kimi": "moonshot", "glm": "z-ai"}.get(provider, "local")))
            return
        if path == "/api/paas/v4/web_search" and method == "POST":
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

    async def _chat(self, path: str, provider: str, payload: dict[str, Any], receive: Receive, send: Send) -> None:
        messages = payload.get("messages", [])
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        last_text = last_user if isinstance(last_user, str) else json.dumps(last_user)
        directives = dict(_DIRECTIVE.findall(last_text))
        self.requests.append({"kind": "chat", "path": path, "provider": provider, "payload": payload})
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._attempts[last_text] += 1
            if self._attempts[last_text] <= int(directives.get("fail_first", 0)):
                status = int(directives.get("fail_status", 500))
                await self._error(send, status, "stub transient failure", directives)
                return
            status = int(directives.get("status", 0))
            if directives.get("fail_model") == payload.get("model"):
                status = 503
            if status:
                await self._error(send, status, f"stub error {status}", directives)
                return
            if provider != "local" and (refused := refusal(provider, payload, self._listed(provider))):
                await _json(send, *refused)
                return
            if directives.get("garbage") == "yes":
                # A proxy's error page where the API should be: 200, and neither JSON nor SSE.
                page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
                await send({"type": "http.response.body", "body": page})
                return
            model = payload.get("model", "unknown")
            prompt = _DIRECTIVE.sub("", last_text).strip()
            reply = f"stub reply from {model}: {prompt} (saw {len(messages)} messages)"
            if words := int(directives.get("words", 0)):
                reply = "\n\n".join(
                    " ".join(f"word{n}" for n in range(start, min(start + 50, words))) for start in range(0, words, 50)
                )
            tools = payload.get("tools") or []
            searched = any(m.get("role") == "tool" and m.get("name") == "$web_search" for m in messages)
            if any(tool.get("type") == "web_search" for tool in tools) or searched:
                reply = f"[searched the web] {reply}"
            thinking = provider != "local" and thinking_active(provider, payload)
            reasoning = reasoning_for(prompt, int(directives.get("reasoning_words", 20))) if thinking else ""
            if not searched and any(t.get("function", {}).get("name") == "$web_search" for t in tools):
                # Moonshot's built-in search: first ask for it as a tool call, to be echoed back.
                await self._stream_search_call(send, model, reasoning)
                return
            if (payload.get("response_format") or {}).get("type") == "json_object":
                spoil = self.bad_json_answers > 0
                self.bad_json_answers -= int(spoil)
                reply = _json_answer(last_text, {**directives, "bad_json": "yes"} if spoil else directives)
            finish = "stop"
            budget = payload.get("max_tokens") or (KIMI_DEFAULT_MAX_TOKENS if provider == "kimi" else None)
            if budget is not None and _tokens(reasoning) + _tokens(reply) > budget:
                # Reasoning spends the output budget first; the answer gets what is left.
                reasoning = " ".join(reasoning.split(" ")[: budget * 3 // 4])
                left = max(0, budget - _tokens(reasoning))
                reply, finish = " ".join(reply.split(" ")[: left * 3 // 4]) if left > 4 else "", "length"
            usage = _usage(messages, reasoning, reply, cached=self._cached_prefix(provider, model, messages))
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
                await self._stream(receive, send, model, reasoning, reply, finish, usage, directives)
            else:
                if delay and await _disconnected_within(receive, delay):
                    self.aborted += 1
                    return
                choice = _tool_call_or(reply, directives.get("call_tool"), payload)
                if reasoning:
                    choice["message"]["reasoning_content"] = reasoning
                await _json(
                    send,
                    200,
                    {
                        "id": f"chatcmpl-{next(self._ids)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "usage": usage,
                        "choices": [{"index": 0, **choice}],
                    },
                )
        finally:
            self.in_flight -= 1

    def _listed(self, provider: str) -> list[str]:
        return self.kimi_models if provider == "kimi" else self.glm_models

    async def _error(self, send: Send, status: int, message: str, directives: dict[str, str]) -> None:
        headers = [(b"retry-after", directives["retry_after"].encode())] if "retry_after" in directives else []
        kind = "rate_limit_reached_error" if status == 429 else "server_error" if status >= 500 else "stub_error"
        await _json(send, status, {"error": {"message": message, "type": kind}}, headers)

    def _cached_prefix(self, provider: str, model: str, messages: list[dict[str, Any]]) -> int:
        """The prompt tokens a context cache would hit: the longest prefix of these messages
        (all but the newest) that an earlier request to this model began with, as Moonshot and
        Z.ai cache a repeated prefix (a thread's system prompt and earlier turns)."""
        cached, prefix = 0, hashlib.sha256()
        for index, message in enumerate(messages):
            prefix.update(json.dumps(message, sort_keys=True).encode())
            key = (provider, model, prefix.hexdigest())
            if index < len(messages) - 1 and key in self._seen_prefixes:
                cached = sum(_message_tokens(m) for m in messages[: index + 1])
            self._seen_prefixes.add(key)
        return cached

    async def _stream_search_call(self, send: Send, model: str, reasoning: str) -> None:
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
        ident = f"chatcmpl-{next(self._ids)}"
        if reasoning:
            await send(
                {
                    "type": "http.response.body",
                    "body": _sse(_chunk(ident, model, {"reasoning_content": reasoning})),
                    "more_body": True,
                }
            )
        chunk = _chunk(ident, model, {"role": "assistant", "tool_calls": [call]}, "tool_calls")
        await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        model: str,
        reasoning: str,
        reply: str,
        finish: str,
        usage: dict[str, Any],
        directives: dict[str, str],
    ) -> None:
        """Reasoning chunks, then answer chunks a word each, then the finish; shaped by the directives."""
        ident = f"chatcmpl-{next(self._ids)}"
        pieces = [("reasoning_content", word) for word in _words(reasoning)]
        pieces += [("content", word) for word in _words(reply)]
        cut = int(directives["cut"]) + len(_words(reasoning)) if "cut" in directives else None
        reset = int(directives["reset"]) + len(_words(reasoning)) if "reset" in directives else None
        # A steady stream spreads its chunks over stream_s; silence pauses once after the first answer chunk.
        gap = float(directives.get("stream_s", 0)) / max(1, len(pieces))
        silence = float(directives.get("silence", 0))
        for index, (field, text) in enumerate(pieces):
            if index == reset:
                # The connection drops: uvicorn closes it without the chunked body's end.
                raise ConnectionResetError("stub: connection reset mid-stream")
            if index == cut:
                # The connection ends mid-answer: no finish_reason, no [DONE].
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(
                {"type": "http.response.body", "body": _sse(_chunk(ident, model, {field: text})), "more_body": True}
            )
            pause = gap + (silence if field == "content" and silence and index == len(_words(reasoning)) else 0)
            if pause and await _disconnected_within(receive, pause):
                self.aborted += 1
                return
        if cut is not None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        final = _chunk(ident, model, {}, finish)
        final["choices"][0]["usage"] = final["usage"] = usage
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


def _chunk(ident: str, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _words(text: str) -> list[str]:
    """A text as the chunks a model streams it in: a word each, the spaces kept."""
    words = text.split(" ") if text else []
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


def _tokens(text: str) -> int:
    return len(text) // 4 + 1 if text else 0


def _message_tokens(message: dict[str, Any]) -> int:
    return len(str(message.get("content", ""))) // 4


def _usage(messages: list[dict[str, Any]], reasoning: str, reply: str, *, cached: int = 0) -> dict[str, Any]:
    """Usage as both providers report it: reasoning counts in the completion and on its own;
    `cached` of the prompt's tokens were a prefix the provider had seen (its context cache),
    reported in prompt_tokens_details and, as Moonshot does, on the usage itself."""
    prompt = sum(_message_tokens(m) for m in messages) + 1
    completion = _tokens(reasoning) + _tokens(reply) or 1
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cached_tokens": cached,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": _tokens(reasoning)},
    }


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
