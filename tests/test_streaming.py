"""Streamed text is coalesced into few frames, loses nothing, and its last part precedes the result."""

import asyncio

from tools_app.streaming import DeltaCoalescer


async def test_deltas_arriving_together_go_out_as_one_chunk() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    stream = DeltaCoalescer(send, interval_s=0.05)
    for word in ["a", " b", " c"]:
        await stream.push(word)
    await asyncio.sleep(0.08)
    assert sent == ["a b c"]


async def test_close_sends_what_is_left_at_once() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    stream = DeltaCoalescer(send, interval_s=10)
    await stream.push("tail")
    await stream.close()
    assert sent == ["tail"]
    await stream.close()
    assert sent == ["tail"]


async def test_a_slow_stream_is_forwarded_in_several_chunks_in_order() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    stream = DeltaCoalescer(send, interval_s=0.01)
    for part in ["one ", "two ", "three"]:
        await stream.push(part)
        await asyncio.sleep(0.03)
    await stream.close()
    assert sent == ["one ", "two ", "three"]
