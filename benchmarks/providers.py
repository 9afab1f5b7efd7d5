"""The provider layer's own cost: the model catalogue on the call path, and long streamed answers.

Prints, nothing asserted, all in one run against the loopback provider stub:
  * resolving a model or alias from the cached catalogue (every call does this): p50/p99 us;
  * a long answer (N words, streamed a word a chunk, reasoning first on thinking models)
    read by the bare SDK (openai for Kimi, zhipuai for GLM) next to the same answer through
    the provider layer (silence watchdog, reasoning split, integrity checks): wall time,
    chunks/s and the layer's cost per chunk.

    python benchmarks/providers.py [--words 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentiles


def setup_django(stub_url: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exai_site.settings")
    os.environ.update(
        KIMI_API_KEY="bench",
        KIMI_BASE_URL=f"{stub_url}/v1",
        GLM_API_KEY="bench",
        GLM_BASE_URL=f"{stub_url}/api/paas/v4/",
        EXAI_PROVIDER_MAX_RETRIES="0",
        EXAI_REDIS_PREFIX=f"exai-bench-{uuid.uuid4().hex[:8]}",
        EXAI_LOG_LEVEL="WARNING",
    )
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


async def resolve_costs(rounds: int) -> dict[str, list[float]]:
    from tools_app.providers import resolve_model

    costs: dict[str, list[float]] = {}
    for name in ("kimi", "kimi-k2.6", "glm-5.1", "auto"):
        await resolve_model(name)  # the first read of each list is not what a call pays
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            await resolve_model(name)
            samples.append((time.perf_counter() - started) * 1e6)
        costs[name] = samples
    return costs


async def bare_openai(stub_url: str, model: str, prompt: str) -> int:
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url=f"{stub_url}/v1", max_retries=0)
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True, "max_tokens": 65536}
    chunks = 0
    stream = await client.post(
        "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[object]
    )
    async with stream:
        async for _ in stream:
            chunks += 1
    await client.close()
    return chunks


def bare_zhipuai(stub_url: str, model: str, prompt: str) -> int:
    import zhipuai

    client = zhipuai.ZhipuAI(api_key="bench", base_url=f"{stub_url}/api/paas/v4/", max_retries=0)
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True, max_tokens=65536
    )
    return sum(1 for _ in stream)


async def through_layer(model: str, prompt: str) -> int:
    from tools_app.providers import resolve_model
    from tools_app.providers.replies import ReplyCollector

    resolved = await resolve_model(model)
    chunks = 0

    async def count(_: str) -> None:
        nonlocal chunks
        chunks += 1

    await resolved.provider.chat(
        spec=resolved.spec,
        messages=[{"role": "user", "content": prompt}],
        temperature=None,
        max_tokens=65536,
        reply=ReplyCollector(model, count, count),
    )
    return chunks


async def timed(work: Any) -> tuple[float, int]:
    started = time.perf_counter()
    chunks = await work()
    return (time.perf_counter() - started) * 1000, chunks


async def stream_rows(stub_url: str, words: int, rounds: int) -> list[str]:
    prompt = f"[[stub:words={words}]]"
    rows = []
    for model, bare in (
        ("kimi-k2.6", lambda m: bare_openai(stub_url, m, prompt)),
        ("glm-5.1", lambda m: asyncio.to_thread(bare_zhipuai, stub_url, m, prompt)),
    ):
        for name, work in (
            ("bare SDK", lambda m=model, b=bare: b(m)),
            ("provider layer", lambda m=model: through_layer(m, prompt)),
        ):
            await work()  # warm up
            runs = [await timed(work) for _ in range(rounds)]
            best_ms = min(ms for ms, _ in runs)
            chunks = runs[0][1]
            rows.append((model, name, best_ms, chunks))
    lines = []
    for model in ("kimi-k2.6", "glm-5.1"):
        (_, _, bare_ms, bare_chunks), (_, _, layer_ms, _) = [r for r in rows if r[0] == model]
        per_chunk_us = (layer_ms - bare_ms) * 1000 / max(1, bare_chunks)
        for _, name, ms, chunks in (r for r in rows if r[0] == model):
            lines.append(f"{model:<10} {name:<16} {ms:9.1f} ms {chunks / ms * 1000:11.0f} chunks/s  ({chunks} chunks)")
        lines.append(f"{model:<10} {'layer cost':<16} {per_chunk_us:9.2f} us per chunk")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from tests.provider_stub import ProviderStub

    stub = ProviderStub().start()
    try:
        setup_django(stub.url)
        costs = asyncio.run(resolve_costs(5_000))
        lines = asyncio.run(stream_rows(stub.url, args.words, args.rounds))
    finally:
        stub.stop()

    print("\nresolving a model from the cached catalogue (every call pays this)")
    print(f"{'name':<12} {'p50 us':>8} {'p95 us':>8} {'p99 us':>8}")
    for name, samples in costs.items():
        p50, p95, p99 = percentiles(samples)
        print(f"{name:<12} {p50:8.1f} {p95:8.1f} {p99:8.1f}")
    print(f"\na {args.words}-word answer streamed a word a chunk (best of {args.rounds})")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
