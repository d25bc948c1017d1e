"""What one request pays for shared state: ``python -m tests.state.latency [calls]``.

Times sequential calls (one at a time, so this is round-trip latency, not throughput) against the
memory store and a local Redis (REDIS_URL, else the bundled redis-server on loopback).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from gateway.state import open_store
from gateway.state.base import BreakerPolicy, Cap, Limit, Store
from tests.state.servers import RedisServer

NOW = 1_800_000_000.0


async def timed(calls: int, once: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    """Median and p99 in microseconds."""
    for i in range(100):  # warm up: connections, scripts
        await once(i)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        await once(i)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def scenarios(store: Store) -> dict[str, Callable[[int], Awaitable[object]]]:
    limits = [Limit("rl:tenant:acme:rpm", 10**9, 60.0), Limit("rl:tenant:acme:tpm", 10**12, 60.0, amount=800)]
    caps = [Cap("budget:acme:daily", 10**9, 86_400), Cap("budget:acme:monthly", 10**9, 86_400)]

    async def reserve_settle(i: int) -> None:
        reservation = await store.budgets.reserve(caps, 0.002, NOW + i)
        await store.budgets.settle(caps, reservation.reservation_id, 0.0015)

    async def lease(i: int) -> None:
        lease_id = await store.leases.acquire("lease:gpu", 10**6, 600, NOW + i)
        assert lease_id is not None
        await store.leases.release("lease:gpu", lease_id)

    return {
        "ping (baseline round trip)": lambda i: store.ping(),
        "admit (rpm + tpm)": lambda i: store.counters.admit(limits, NOW + i),
        "reserve + settle (2 caps)": reserve_settle,
        "lease acquire + release": lease,
        "breaker statuses (1)": lambda i: store.breakers.statuses(["vllm-a"], BreakerPolicy(), NOW + i),
        "cache get (miss)": lambda i: store.cache.get(f"acme:{i}"),
    }


async def measure(url: str | None, calls: int) -> None:
    store = await open_store(url, prefix=f"latency:{uuid.uuid4().hex[:8]}:", timeout_seconds=1.0)
    try:
        for name, once in scenarios(store).items():
            median, p99 = await timed(calls, once)
            print(f"{store.name:6}  {name:28} median {median:7.1f} us   p99 {p99:7.1f} us")
    finally:
        await store.aclose()


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    server = None if os.environ.get("REDIS_URL") else RedisServer().start()
    url = server.url if server else os.environ["REDIS_URL"]
    try:
        asyncio.run(measure(None, calls))
        asyncio.run(measure(url, calls))
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
