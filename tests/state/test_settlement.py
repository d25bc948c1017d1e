"""Settlements across a real Redis pause (SIGSTOP): queued, retried, applied once, bounded, drained.

A paused redis-server still accepts connections and buffers what is sent; when it continues it runs
those commands. So a settle that timed out did land, later: the retry must not count it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from gateway.state.base import Cap, Limit, StateUnavailable
from gateway.state.redis_store import RedisStore
from gateway.state.settlement import Settlement, Settlements
from tests.state.servers import RedisServer

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
CAPS = (Cap("budget:acme:d", 1e9, 86_400, "tenant:acme"),)
TPM = Limit("rl:t:acme:tpm", 10**9, 60.0, amount=10, scope="tenant:acme")


@pytest.fixture
async def paused() -> AsyncIterator[tuple[RedisServer, RedisStore]]:
    server = RedisServer().start()
    store = await RedisStore.connect(server.url, timeout_seconds=0.1)
    yield server, store
    server.resume()
    await store.aclose()
    server.close()


def spend(request: str, cost: float) -> Settlement:
    return Settlement(request, "acme", cost, int(cost), CAPS, request)


async def spent(store: RedisStore) -> float:
    return (await store.budgets.spent(CAPS))[0]


async def settled_by(settlements: Settlements, seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while settlements.pending:
            await asyncio.sleep(0.02)


async def test_a_settle_that_timed_out_and_landed_late_is_not_counted_again(
    paused: tuple[RedisServer, RedisStore],
) -> None:
    server, store = paused
    failures: list[StateUnavailable] = []
    settlements = Settlements(store, on_failure=failures.append, backoff=(0.01, 0.05))
    reservation = await store.budgets.reserve(CAPS, 5.0, NOW, "req-1")
    server.pause()
    await settlements.submit(Settlement("req-1", "acme", 3.0, 3, CAPS, reservation.reservation_id))
    assert len(failures) == 1 and len(settlements.pending) == 1, "timed out, so queued"
    await asyncio.sleep(0.3)  # a few retries reach the paused server too
    server.resume()  # it now runs the first try and every retry it got
    await settled_by(settlements)
    await asyncio.sleep(0.2)
    assert await spent(store) == 3.0, "spent once; the reservation released"
    await settlements.drain()


async def test_requests_settled_across_a_pause_add_up_exactly(paused: tuple[RedisServer, RedisStore]) -> None:
    server, store = paused
    settlements = Settlements(store, backoff=(0.01, 0.1))
    window = (int(NOW // 60),)

    def one(i: int) -> Settlement:  # half admitted normally, half failed open (their admission may have landed)
        counted = i % 2 == 0
        return Settlement(
            f"req-{i}", "acme", float(i), i, CAPS, f"req-{i}", (TPM,), window, (i - 10,), None if counted else (i,)
        )

    admitted = [await store.counters.admit([TPM], NOW, f"req-{i}") for i in range(0, 40, 2)]
    assert all(a.allowed for a in admitted)
    await asyncio.gather(*(settlements.submit(one(i)) for i in range(10)))
    server.pause()
    await asyncio.gather(*(settlements.submit(one(i)) for i in range(10, 30)))
    server.resume()
    await asyncio.gather(*(settlements.submit(one(i)) for i in range(30, 40)))
    await settled_by(settlements)
    await asyncio.sleep(0.2)
    assert await spent(store) == sum(range(40))
    probe = await store.counters.admit([Limit(TPM.key, 1, 60.0, scope="tenant:acme")], NOW)
    assert probe.current == sum(range(40)), "the tpm counter holds the real tokens, each request once"
    assert settlements.dropped == 0 and settlements.queued >= 20


async def test_the_queue_is_bounded_and_counts_what_it_drops(
    paused: tuple[RedisServer, RedisStore], caplog: pytest.LogCaptureFixture
) -> None:
    server, store = paused
    depths: list[int] = []
    drops: list[None] = []
    settlements = Settlements(store, max_pending=3, on_depth=depths.append, on_drop=lambda: drops.append(None))
    server.pause()
    for i in range(5):
        await settlements.submit(spend(f"req-{i}", 1.0))
    assert len(settlements.pending) == 3 and max(depths) == 3
    assert settlements.dropped == 2 and len(drops) == 2
    assert "settlement queue full" in caplog.text
    with caplog.at_level(logging.ERROR, logger="gateway.guards"):
        left = await settlements.drain(0.3)  # still paused: nothing can be applied
    assert left == 3
    assert "3 settlements could not be applied to shared state: tenant 'acme': $3, 3 tokens" in caplog.text


async def test_shutdown_drains_the_queue_once_redis_answers(paused: tuple[RedisServer, RedisStore]) -> None:
    server, store = paused
    depths: list[int] = []
    settlements = Settlements(store, on_depth=depths.append, backoff=(0.01, 0.05))
    server.pause()
    for i in range(4):
        await settlements.submit(spend(f"req-{i}", 2.0))
    asyncio.get_running_loop().call_later(0.3, server.resume)
    assert await settlements.drain(10.0) == 0
    assert await spent(store) == 8.0 and depths[-1] == 0
