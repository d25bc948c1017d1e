"""The stand-ins ``gateway serve --demo`` starts: they answer, keep nothing, and expose no control routes."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from gateway.standin.demo import DEMO_OPENAI_KEY, start_demo_upstreams

pytestmark = pytest.mark.anyio

PROMPT = "word " * 20_000  # 100 kB: a long document pasted into a chat


@pytest.fixture
async def demo() -> AsyncIterator[dict[str, str]]:
    async with AsyncExitStack() as stack:
        yield await start_demo_upstreams(stack)


def urls(env: dict[str, str]) -> set[str]:
    return {value for name, value in env.items() if name.endswith("_BASE_URL")}


async def test_the_demo_stand_ins_do_not_grow_with_the_requests_they_answer(demo: dict[str, str]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    # a connection per request: on a kept-alive one, each stand-in answer waits ~40 ms for a delayed ACK
    headers = {"authorization": f"Bearer {DEMO_OPENAI_KEY}", "connection": "close"}
    async with httpx.AsyncClient(headers=headers) as client:

        async def send(count: int) -> None:
            for url in urls(demo):
                for _ in range(count):
                    assert (await client.post(url + "/chat/completions", json=body)).status_code == 200

        await send(2)  # warm: imports, caches, connections
        tracemalloc.start()
        try:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            await send(15)  # 45 answers, 4.5 MB of prompts
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < 1_000_000, f"the stand-ins kept {grown / 1e6:.1f} MB after 45 requests"


async def test_the_demo_stand_ins_expose_no_control_routes_and_no_key(demo: dict[str, str]) -> None:
    async with httpx.AsyncClient() as client:
        for url in urls(demo):
            root = url.removesuffix("/v1")
            answers = [
                await client.get(root + "/_standin/calls"),
                await client.post(root + "/_standin/faults", json=[{"status": 500, "times": 100}]),
                await client.post(root + "/_standin/timing", json={"delay": 60}),
                await client.post(
                    url + "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                ),
            ]
            assert [a.status_code for a in answers[:3]] == [404, 404, 404]
            assert all(DEMO_OPENAI_KEY not in a.text for a in answers)
