"""What the hostile-network hardening adds to a call's path, each step next to what it wraps.

Prints microseconds per call (p50/p95/p99), nothing asserted:
  * decoding a `call_tool` frame: json.loads alone, then with the lone-surrogate check
    (a small frame, and one carrying a 60,000-character prompt);
  * checking a tool's arguments: the JSON Schema alone, then with every text field bounded
    (`chat`, and a `debug` step with its lists);
  * counting a call in Prometheus with labels restricted to known tools, providers, models;
  * a frame through the socket guard (the pre-authentication frame limit) against none;
  * the throttle's slots in-process: user + global + provider (as before) against
    user + user's share of the provider + global + provider (now).

    python benchmarks/hardening.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentiles


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exai_site.settings")
    os.environ.setdefault("KIMI_API_KEY", "bench")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def timed(function: Callable[[], Any], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def line(label: str, samples: list[float]) -> None:
    p50, p95, p99 = percentiles(samples)
    print(f"  {label:<52} {p50:9.2f} {p95:9.2f} {p99:9.2f}")


def frames(rounds: int) -> None:
    from exai_site.text import clean_decoded

    print("\ndecoding a call_tool frame, microseconds               p50       p95       p99")
    for size, prompt in (("small frame", "review this function please"), ("60,000-char prompt", "x" * 60_000)):
        text = json.dumps({"op": "call_tool", "request_id": "r1", "name": "chat", "arguments": {"prompt": prompt}})
        line(f"{size}: json.loads", timed(lambda text=text: json.loads(text), rounds))
        line(f"{size}: + surrogate check", timed(lambda text=text: clean_decoded(json.loads(text), text), rounds))


def arguments(rounds: int) -> None:
    from tools_app.services import _check_text_bounds, _validator

    chat = {"prompt": "review this function please " * 20, "model": "auto", "temperature": 0.2}
    step = {
        "step": "look at the parser",
        "step_number": 2,
        "total_steps": 5,
        "next_step_required": True,
        "findings": "the loop never ends when the input is empty " * 10,
        "hypothesis": "an off-by-one in the bounds check",
        "files_checked": [f"src/module_{i}.py" for i in range(20)],
        "relevant_files": [f"src/module_{i}.py" for i in range(5)],
        "issues_found": [{"severity": "high", "description": "infinite loop on empty input"}],
    }
    print("\nchecking a tool's arguments, microseconds                p50       p95       p99")
    for name, args in (("chat", chat), ("debug", step)):
        validator = _validator(name)
        line(f"{name}: JSON Schema", timed(lambda v=validator, a=args: list(v.iter_errors(a)), rounds))
        line(
            f"{name}: JSON Schema + text bounds",
            timed(lambda v=validator, a=args, n=name: (list(v.iter_errors(a)), _check_text_bounds(n, a)), rounds),
        )
        line(f"{name}: the text bounds alone", timed(lambda a=args, n=name: _check_text_bounds(n, a), rounds))


def prometheus_labels(rounds: int) -> None:
    from metrics_app import prometheus
    from metrics_app.models import LatencySample

    sample = LatencySample(
        tool="chat",
        provider="kimi",
        model="kimi-k2.6",
        status="ok",
        request_id="r",
        total_latency_ms=5.0,
        processing_ms=3.0,
        overhead_ms=2.0,
    )
    made_up = LatencySample(tool=f"made-up-{uuid.uuid4().hex}", provider="", model="", status="unknown_tool")
    made_up.total_latency_ms = made_up.overhead_ms = 1.0
    print("\ncounting a call in Prometheus, microseconds             p50       p95       p99")
    line("known labels (kept)", timed(lambda: prometheus.observe(sample), rounds))
    line("a made-up tool name (counted as `other`)", timed(lambda: prometheus.observe(made_up), rounds))
    line("of which: the known-label lookup", timed(prometheus.known_labels, rounds))


def socket_guard(rounds: int) -> None:
    from django.urls import path

    from exai_site.sockets import WebSocketEntry

    frame = {"type": "websocket.receive", "text": json.dumps({"op": "ping"})}

    async def measure(guarded: bool) -> list[float]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        samples: list[float] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()  # the connect
            slot = scope.get("exai.socket")
            if slot is not None:
                slot.authenticate(1)
            for _ in range(rounds):
                queue.put_nowait(frame)
                started = time.perf_counter()
                await receive()
                samples.append((time.perf_counter() - started) * 1e6)

        async def send(message: dict[str, Any]) -> None:
            pass

        queue.put_nowait({"type": "websocket.connect"})
        scope = {"type": "websocket", "client": ("127.0.0.1", 1), "path": "/ws", "headers": []}
        await (WebSocketEntry([path("ws", app)]) if guarded else app)(scope, queue.get, send)
        return samples

    print("\na frame into a consumer, microseconds                    p50       p95       p99")
    line("no guard", asyncio.run(measure(False)))
    line("through the socket guard", asyncio.run(measure(True)))


def throttle_pools(rounds: int) -> None:
    from tools_app.throttle import Pool
    from tools_app.throttle.base import global_pool, provider_pool
    from tools_app.throttle.local import LocalThrottle

    async def measure() -> tuple[list[float], list[float]]:
        throttle = LocalThrottle()
        before, now = [], []
        for i in range(rounds):
            deadline = time.perf_counter() + 5
            started = time.perf_counter()
            async with (
                throttle.hold(Pool(f"user:{i % 16}", 8), deadline),
                throttle.hold(global_pool(), deadline),
                throttle.hold(provider_pool("kimi"), deadline),
            ):
                pass
            before.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            async with throttle.slots(provider="kimi", user_id=i % 16):
                pass
            now.append((time.perf_counter() - started) * 1e6)
        return before, now

    before, now = asyncio.run(measure())
    print("\nthrottle slots in-process, microseconds                 p50       p95       p99")
    line("user + global + provider (before)", before)
    line("user + user's provider share + global + provider (now)", now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    setup_django()
    frames(args.rounds)
    arguments(args.rounds)
    prometheus_labels(args.rounds)
    socket_guard(args.rounds)
    throttle_pools(args.rounds)


if __name__ == "__main__":
    main()
