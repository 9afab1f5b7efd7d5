"""Streamed text is coalesced into few frames, loses nothing, and its last part precedes the result."""

import asyncio

import pytest

from tools_app.streaming import DeltaCoalescer


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def __call__(self, text: str) -> None:
        self.sent.append(text)


@pytest.fixture
def send() -> Recorder:
    return Recorder()


async def test_deltas_arriving_together_go_out_as_one_chunk(send: Recorder) -> None:
    stream = DeltaCoalescer(send, interval_s=0.05)
    for word in ["a", " b", " c"]:
        await stream.push(word)
    await asyncio.sleep(0.08)
    assert send.sent == ["a b c"]


async def test_close_sends_what_is_left_at_once(send: Recorder) -> None:
    stream = DeltaCoalescer(send, interval_s=10)
    await stream.push("tail")
    await stream.close()
    assert send.sent == ["tail"]
    await stream.close()
    assert send.sent == ["tail"]


async def test_a_slow_stream_is_forwarded_in_several_chunks_in_order(send: Recorder) -> None:
    stream = DeltaCoalescer(send, interval_s=0.01)
    for part in ["one ", "two ", "three"]:
        await stream.push(part)
        await asyncio.sleep(0.03)
    await stream.close()
    assert send.sent == ["one ", "two ", "three"]
