"""Stream events that are ready together go out together; nothing waits behind the upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest
from starlette.types import Message

from gateway.http.coalesce import ready_batches
from gateway.http.fastpath import EventStream

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[pytest.param(("asyncio", {}), id="asyncio"), pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


class Source:
    """Events in bursts: each burst is ready at once, the next one only when the test lets it go."""

    def __init__(self, *bursts: list[bytes]) -> None:
        self.bursts = bursts
        self.go = [asyncio.Event() for _ in bursts]
        self.cleaned_up = False
        self.cancelled = False

    async def events(self) -> AsyncIterator[bytes]:
        try:
            for burst, go in zip(self.bursts, self.go, strict=True):
                await go.wait()
                for event in burst:
                    yield event
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            await asyncio.sleep(0)  # cleanup that awaits, as the gateway's does (leases, records)
            self.cleaned_up = True


async def test_a_burst_goes_out_as_one_piece_before_the_source_waits_again() -> None:
    source = Source([b"a", b"b", b"c"], [b"d"], [b"e", b"f"])
    source.go[0].set()
    batches = ready_batches(source.events())
    assert await anext(batches) == (b"abc", False)  # the next burst has not been let go: no deadlock
    source.go[1].set()
    assert await anext(batches) == (b"d", False)
    source.go[2].set()
    assert await anext(batches) == (b"ef", False), "its cleanup awaited: the end came after a wait"
    with pytest.raises(StopAsyncIteration):
        await anext(batches)
    assert source.cleaned_up


async def test_a_source_that_ends_after_a_wait_ends_without_a_last_piece() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(0.01)

    assert [piece async for piece in ready_batches(events())] == [(b"x", False)]


async def test_a_source_that_ends_without_waiting_marks_its_last_piece() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(0)
        yield b"y"
        yield b"z"

    assert [piece async for piece in ready_batches(events())] == [(b"x", False), (b"yz", True)]


async def test_a_batch_goes_out_at_the_size_limit_even_when_more_is_ready() -> None:
    async def events() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"0123456789"

    pieces = [piece async for piece in ready_batches(events(), limit=25)]
    assert pieces == [(b"0123456789" * 3, False)] * 3 + [(b"0123456789", True)]


async def test_errors_of_the_source_reach_the_consumer_after_what_came_before() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b"one"
        await asyncio.sleep(0)
        yield b"two"
        raise RuntimeError("upstream broke")

    batches = ready_batches(events())
    assert await anext(batches) == (b"one", False)
    with pytest.raises(RuntimeError, match="upstream broke"):
        await anext(batches)


async def test_cancelling_the_consumer_while_the_source_waits_runs_the_source_cleanup() -> None:
    source = Source([b"a"], [b"never"])
    source.go[0].set()
    got: list[tuple[bytes, bool]] = []

    async def consume() -> None:
        async with aclosing(ready_batches(source.events())) as batches:
            async for piece in batches:
                got.append(piece)

    task = asyncio.ensure_future(consume())
    while not got:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)  # now waiting for the second burst
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert got == [(b"a", False)]
    assert source.cancelled and source.cleaned_up


async def test_closing_the_batches_while_a_step_is_outstanding_cancels_it_cleanly() -> None:
    # The consumer stops right after a piece that went out because the source was about to wait:
    # the step that started waiting is cancelled the way a task cancels what it awaits.
    source = Source([b"a", b"b"], [b"never"])
    source.go[0].set()
    batches = ready_batches(source.events())
    assert await anext(batches) == (b"ab", False)
    await batches.aclose()
    assert source.cancelled and source.cleaned_up


async def test_event_stream_sends_a_ready_stream_in_one_write_with_the_end() -> None:
    async def events() -> AsyncIterator[bytes]:
        for i in range(20):
            yield b"data: %d\n\n" % i
        yield b"data: [DONE]\n\n"

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    await EventStream(events())({"type": "http"}, receive, send)
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert len(bodies) == 1 and bodies[0]["more_body"] is False
    assert bodies[0]["body"] == b"".join(b"data: %d\n\n" % i for i in range(20)) + b"data: [DONE]\n\n"
