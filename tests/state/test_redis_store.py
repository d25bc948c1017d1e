"""What only the Redis backend has: key names and TTLs, outages, a hung server, restarts, lost scripts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.state.base import BreakerPolicy, Cap, Limit, StateUnavailable, Store
from gateway.state.redis_store import RedisStore
from tests.state.servers import RedisServer

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
POLICY = BreakerPolicy(failures=1, window_seconds=30, cooldown_seconds=10)
CAPS = [Cap("budget:acme:daily:2027-01-15", 10.0, 86_400)]
RPM = Limit("rl:tenant:acme:rpm", 100, 60.0)


def operations(store: Store) -> dict[str, Callable[[], Awaitable[Any]]]:
    """One call of every operation, each creating or touching keys."""
    return {
        "admit": lambda: store.counters.admit([RPM], NOW),
        "adjust": lambda: store.counters.adjust([RPM], [int(NOW // 60)], [5]),
        "reserve": lambda: store.budgets.reserve(CAPS, 1.0, NOW),
        "settle": lambda: store.budgets.settle(CAPS, "r-1", 0.5),
        "spent": lambda: store.budgets.spent(CAPS),
        "acquire": lambda: store.leases.acquire("lease:gpu-1", 4, 600, NOW),
        "release": lambda: store.leases.release("lease:gpu-1", "l-1"),
        "held": lambda: store.leases.held("lease:gpu-1", NOW),
        "record": lambda: store.breakers.record("vllm-a", False, POLICY, NOW),
        "allow_probe": lambda: store.breakers.allow_probe("vllm-a", POLICY, NOW + 11),
        "statuses": lambda: store.breakers.statuses(["vllm-a"], POLICY, NOW),
        "view": lambda: store.breakers.view(["vllm-a"], POLICY, NOW),
        "put": lambda: store.cache.put("acme:k", b"v", 60),
        "get": lambda: store.cache.get("acme:k"),
    }


@pytest.fixture
async def private() -> AsyncIterator[tuple[RedisServer, RedisStore]]:
    """A server of its own (this test kills it) and a store on it with the default, tight timeout."""
    server = RedisServer().start()
    store = await RedisStore.connect(server.url)
    yield server, store
    await store.aclose()
    server.close()


async def run_all(store: Store) -> None:
    for call in operations(store).values():
        await call()


async def assert_unavailable_fast(store: Store) -> None:
    for name, call in operations(store).items():
        started = time.perf_counter()
        with pytest.raises(StateUnavailable):
            await call()
        assert time.perf_counter() - started < 0.5, name
    assert not await store.ping()


async def test_every_key_has_the_prefix_and_a_ttl(redis_url: str, prefix: str, redis_client: Redis) -> None:
    store = await RedisStore.connect(redis_url, prefix=prefix)
    try:
        await run_all(store)
        await store.budgets.reserve(CAPS, 1.0, NOW)  # leave a reservation behind: hold ZSET exists
    finally:
        await store.aclose()
    keys = sorted([key.decode() async for key in client_keys(redis_client, prefix)])
    kinds = {key.removeprefix(prefix).rpartition("}:")[2].split(":")[0] for key in keys}
    assert kinds == {"rate", "budget", "hold", "lease", "breaker", "cache", "settled"}  # settled: the settle's id
    # the keys one script updates together carry one hash tag: the scope (here, each key is its own)
    assert f"{prefix}{{{CAPS[0].key}}}:budget:{CAPS[0].key}" in keys
    assert f"{prefix}{{{CAPS[0].key}}}:hold:{CAPS[0].key}" in keys
    ttls = {key: await redis_client.pttl(key) for key in keys}
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    assert 60_000 < ttls[f"{prefix}{{{RPM.key}}}:rate:{RPM.key}:{int(NOW // 60)}"] <= 120_000
    assert 590_000 < ttls[f"{prefix}{{{CAPS[0].key}}}:settled:r-1"] <= 600_000  # rules.SETTLED_SECONDS


def client_keys(client: Redis, prefix: str) -> AsyncIterator[bytes]:
    return client.scan_iter(match=prefix + "*")


async def test_a_dead_redis_fails_fast_and_recovery_is_automatic(private: tuple[RedisServer, RedisStore]) -> None:
    server, store = private
    await run_all(store)  # pooled connections exist when the server dies
    server.kill()
    await assert_unavailable_fast(store)
    server.start()  # a new, empty server on the same address: no scripts loaded (NOSCRIPT)
    await run_all(store)
    assert (await store.counters.admit([RPM], NOW)).allowed
    assert await store.ping()


async def test_a_hung_redis_times_out(private: tuple[RedisServer, RedisStore]) -> None:
    server, store = private
    await run_all(store)
    server.pause()  # accepts connections, answers nothing
    try:
        await assert_unavailable_fast(store)
    finally:
        server.resume()
    # the server now answers the abandoned calls on their old sockets; no reply may reach a new caller
    for i in range(20):
        await store.cache.put(f"acme:{i}", f"value-{i}".encode(), 60)
        assert await store.cache.get(f"acme:{i}") == f"value-{i}".encode()
        assert (await store.counters.admit([Limit("rl:after-hang", 100, 60.0)], NOW)).windows == (int(NOW // 60),)
    assert (await store.counters.admit([Limit("rl:after-hang", 20, 60.0)], NOW)).current == 20
    assert await store.ping()


async def test_an_outage_does_not_wedge_the_pool(make_redis_server: Callable[[], RedisServer]) -> None:
    server = make_redis_server()
    # a roomy timeout: 200 callers share 32 connections, all reconnecting at once on a busy CI box
    store = await RedisStore.connect(server.url, timeout_seconds=1.0)
    limit = Limit("rl:burst", 1000, 60.0)
    try:
        await asyncio.gather(*(store.counters.admit([limit], NOW) for _ in range(200)))
        server.kill()
        started = time.perf_counter()
        results = await asyncio.gather(
            *(store.counters.admit([limit], NOW) for _ in range(200)), return_exceptions=True
        )
        assert all(isinstance(r, StateUnavailable) for r in results)
        assert time.perf_counter() - started < 1.0  # refused connections fail at once, timeout or not
        server.start()
        admissions = await asyncio.gather(*(store.counters.admit([limit], NOW) for _ in range(200)))
        assert all(a.allowed for a in admissions)
        assert (await store.counters.admit([Limit("rl:burst", 200, 60.0)], NOW)).current == 200
    finally:
        await store.aclose()


async def test_scripts_flushed_from_a_live_server_are_reloaded(private: tuple[RedisServer, RedisStore]) -> None:
    server, store = private  # SCRIPT FLUSH is server-wide: not on a shared REDIS_URL
    assert (await store.counters.admit([RPM], NOW)).allowed
    client = Redis.from_url(server.url)
    try:
        await client.script_flush()
    finally:
        await client.aclose()
    assert (await store.counters.admit([RPM], NOW)).allowed
    assert (await store.counters.admit([Limit(RPM.key, 2, 60.0)], NOW)).current == 2


async def test_redis_errors_do_not_leak(redis_url: str, prefix: str, redis_client: Redis) -> None:
    store = await RedisStore.connect(redis_url, prefix=prefix)
    try:
        await redis_client.set(f"{prefix}lease:wrong-type", b"a string, not a ZSET", px=60_000)
        with pytest.raises(StateUnavailable, match="WRONGTYPE"):
            await store.leases.acquire("wrong-type", 1, 60, NOW)
    finally:
        await store.aclose()


async def test_a_store_can_start_before_redis(make_redis_server: Callable[[], RedisServer]) -> None:
    server = make_redis_server()
    server.kill()
    store = await RedisStore.connect(server.url)
    try:
        assert not await store.ping()
        server.start()
        assert await store.ping()
    finally:
        await store.aclose()
